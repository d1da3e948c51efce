"""Fuzz target: arbitrary bytes -> images.decode_image, or meshes.load_geometry and point_cloud.

Input layout: byte 0 picks the decoder (0: image, re-encoding to a 16-pixel PNG when bit 3 is set;
1..6: the mesh types off, obj, ply, stl, glb, gltf), the rest is the file. Property: each call returns
its value or raises MediaError, nothing else; run libFuzzer with -timeout to bound the time per input.
Run: python tests/fuzz/fuzz_media.py [libFuzzer flags] [corpus folders]
"""
import logging
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
with atheris.instrument_imports(include=["transforms", "trimesh", "PIL"]):
    import numpy as np

    from schemas.options import MediaOptions
    from transforms.media.images import DecodedImage, decode_image
    from transforms.media.errors import MediaError
    from transforms.media.meshes import Geometry, load_geometry, point_cloud

MESH_TYPES = ("off", "obj", "ply", "stl", "glb", "gltf")
MAX_PIXELS = 4_000_000  # keeps one input's decode within the per-input timeout
AS_IS = MediaOptions(max_image_pixels=MAX_PIXELS)
RESIZED = MediaOptions(max_image_pixels=MAX_PIXELS, image_size=16, image_format="png")
CLOUD_POINTS = 64
logging.getLogger("trimesh").setLevel(logging.CRITICAL)  # it logs a traceback for every bad file it rejects


def check(data: bytes) -> None:
    """One fuzz input -> None, or the exception that is neither a value nor a MediaError."""
    if not data:
        return
    kind, body = data[0] % 8, data[1:]
    if kind == 0 or kind == 7:
        try:
            image = decode_image(body, RESIZED if data[0] & 8 else AS_IS)
        except MediaError:
            return
        assert isinstance(image, DecodedImage) and image.width > 0 and image.height > 0, image
        return
    file_type = MESH_TYPES[kind - 1]
    try:
        geometry = load_geometry(body, file_type)
        assert isinstance(geometry, Geometry), geometry
    except MediaError:
        pass
    cloud = point_cloud(body, file_type, CLOUD_POINTS)
    if not isinstance(cloud, MediaError):
        assert isinstance(cloud, np.ndarray) and cloud.shape == (CLOUD_POINTS, 3), cloud


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    check(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
