"""Fuzz target: arbitrary bytes -> the vectorized mesh readers (mesh_readers.read_mesh), checked against trimesh.

Input layout: byte 0 picks the format (bits 0-1: stl, ply, off, obj); with bit 2 set the rest is binary
data the target frames: for stl 50-byte triangle records behind an 80-byte header and the count of whole
records, for ply a PLY header without its first two lines, behind "ply" and a binary format line (bit 3: big
endian). Otherwise the rest is the file.
Properties, for the file the input makes:
- read_mesh raises nothing; not even MemoryError, which would be a size some header claims, allocated;
- an accepted file gives float64 (n, 3) vertices and at least one int64 (m, 3) face, every index in range;
  vertices may be NaN or infinite, as trimesh reads them; load_geometry drops the faces on those, so every
  vertex of its faces is finite;
- point_cloud gives a MediaError or a finite (CLOUD_POINTS, 3) float32 array, the same array on a second
  call (coordinates beyond float32's range are a mesh_degenerate MediaError);
- load_geometry gives what it gives through trimesh (fast=False): the same triangles with the same corner
  coordinates bit for bit (trimesh may hold a vertex several times, once per texture coordinate or normal),
  or the same MediaError reason class; the readers promise trimesh's surface, and a file trimesh cannot read
  must be left to it.
Files a reader leaves to trimesh (None) are fuzz_media's subject, not this target's.
Run: python tests/fuzz/fuzz_mesh_readers.py [libFuzzer flags] [corpus folders] (it adds -dict=fuzz_mesh_readers.dict)
"""
import logging
import struct
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
with atheris.instrument_imports(include=["transforms.media.mesh_readers", "transforms.media.meshes"]):
    import numpy as np

    from transforms.media.errors import MediaError
    from transforms.media.mesh_readers import read_mesh
    from transforms.media.meshes import Geometry, load_geometry, point_cloud

DICTIONARY = Path(__file__).with_suffix(".dict")  # the formats' keywords: line coverage alone guides little here
FORMATS = ("stl", "ply", "off", "obj")
CLOUD_POINTS = 2048
logging.getLogger("trimesh").setLevel(logging.CRITICAL)  # it logs a traceback for every bad file it rejects


def mesh_file(data: bytes) -> tuple[str, bytes]:
    """A fuzz input (non-empty) -> (file type, file bytes), as the module docstring lays it out."""
    file_type, body = FORMATS[data[0] & 3], data[1:]
    if not data[0] & 4 or file_type not in ("stl", "ply"):
        return file_type, body
    if file_type == "stl":
        return file_type, bytes(80) + struct.pack("<I", len(body) // 50) + body
    endian = "big" if data[0] & 8 else "little"
    return file_type, f"ply\nformat binary_{endian}_endian 1.0\n".encode() + body


def outcome(data: bytes, file_type: str, fast: bool) -> Geometry | str:
    """load_geometry's Geometry, or the reason class of its MediaError."""
    try:
        return load_geometry(data, file_type, fast=fast)
    except MediaError as error:
        return error.reason_class


def check_cloud(data: bytes, file_type: str, geometry: Geometry | str) -> None:
    """point_cloud gives a MediaError or a finite float32 cloud, the same one every time; geometry is what
    load_geometry gave."""
    cloud = point_cloud(data, file_type, CLOUD_POINTS)
    if isinstance(cloud, MediaError):
        return
    assert isinstance(cloud, np.ndarray) and cloud.dtype == np.float32, cloud
    assert cloud.shape == (CLOUD_POINTS, 3), cloud.shape
    assert np.array_equal(cloud, point_cloud(data, file_type, CLOUD_POINTS), equal_nan=True)
    assert np.isfinite(cloud).all(), "a non-finite point"


def check(data: bytes) -> None:
    """One fuzz input -> None, or the exception of a property that does not hold."""
    if not data:
        return
    file_type, body = mesh_file(data)
    mesh = read_mesh(body, file_type)
    if mesh is None:
        return
    vertices, faces = mesh
    assert vertices.dtype == np.float64 and vertices.ndim == 2 and vertices.shape[1] == 3, vertices.shape
    assert faces.dtype == np.int64 and faces.ndim == 2 and faces.shape[1] == 3 and len(faces), faces.shape
    assert faces.min() >= 0 and faces.max() < len(vertices), (faces.min(), faces.max(), len(vertices))
    fast = outcome(body, file_type, fast=True)
    if isinstance(fast, Geometry):
        assert np.isfinite(fast.vertices[fast.faces]).all(), "a kept face has a non-finite vertex"
    check_cloud(body, file_type, fast)
    reference = outcome(body, file_type, fast=False)
    if isinstance(reference, Geometry) and isinstance(fast, Geometry):
        # the surface, not the vertex list: trimesh gives a vertex one copy per texture coordinate or normal
        assert len(fast.faces) == len(reference.faces), "triangles differ from trimesh's"
        assert np.array_equal(fast.vertices[fast.faces], reference.vertices[reference.faces], equal_nan=True), \
            "triangle corners differ from trimesh's"
    else:
        assert fast == reference, (fast, reference)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    check(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv + [f"-dict={DICTIONARY}"], TestOneInput)
    atheris.Fuzz()
