"""The plain single-process loops the media pipeline is measured against, and the mesh sampling step alone.

    python -m bench.media_loops --loop-images|--loop-images-224|--loop-http-images|--loop-meshes LIST.csv

In: a CSV whose first column is a path or URL per line (as bench.media_bench writes them). Out: nothing;
bench.media_bench times each loop as its own process.
"""
import functools
import sys
import time

POINTS = 2048


def loop_images(list_path: str, size: int = 0) -> None:
    """Open and decode every image (resizing its shorter side to `size` when given), one after another."""
    from PIL import Image
    for line in open(list_path):
        with Image.open(line.split(",")[0]) as image:
            image.load()
            if size:
                w, h = image.size
                image.resize((max(1, round(w * size / min(w, h))), max(1, round(h * size / min(w, h)))))


def loop_http_images(list_path: str) -> None:
    """GET every image URL with urllib, then open and decode it with Pillow, one after another."""
    import io
    import urllib.request
    from PIL import Image
    for line in open(list_path):
        with urllib.request.urlopen(line.split(",")[0], timeout=30) as response:
            data = response.read()
        with Image.open(io.BytesIO(data)) as image:
            image.load()


def loop_meshes(list_path: str) -> None:
    """docarray's former way; it raises on point-only files (no faces), which are skipped here."""
    import trimesh
    for line in open(list_path):
        try:
            trimesh.load(line.split(",")[0], force="mesh").sample(POINTS)
        except (IndexError, ValueError):
            pass


LOOPS = {"--loop-images": loop_images, "--loop-images-224": functools.partial(loop_images, size=224),
         "--loop-http-images": loop_http_images, "--loop-meshes": loop_meshes}


def sampling_rates(mesh_paths: list[str]) -> dict[str, tuple[int, float]]:
    """The sampling step alone, on meshes loaded once -> {name: (points drawn, seconds)}."""
    import numpy as np
    import trimesh
    from schemas.modalities import uri_extension as file_type
    from transforms.media.meshes import load_geometry, mesh_seed, sample_point_cloud

    geometries, meshes = [], []
    for path in mesh_paths:
        with open(path, "rb") as handle:
            data = handle.read()
        geometry = load_geometry(data, file_type(path))
        if geometry.faces is not None and len(geometry.faces):
            geometries.append((geometry, mesh_seed(data)))
            meshes.append(trimesh.Trimesh(geometry.vertices, geometry.faces, process=False))
    start = time.perf_counter()
    for geometry, seed in geometries:
        sample_point_cloud(geometry, seed, POINTS)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    for mesh in meshes:
        trimesh.sample.sample_surface(mesh, POINTS, seed=np.random.default_rng(0))
    theirs = time.perf_counter() - start
    n = len(geometries) * POINTS
    return {"sampling: sample_point_cloud (ours)": (n, ours),
            "sampling: trimesh.sample.sample_surface loop": (n, theirs)}


if __name__ == "__main__":
    LOOPS[sys.argv[1]](sys.argv[2])
