"""transforms.media.meshes on the real meshes of tests/data/meshes (see SOURCES.md there) and on small built ones."""
import re
import signal
import struct
from contextlib import contextmanager

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from transforms.media.errors import MediaError
from transforms.media.meshes import FACE_BLOCK, Geometry, load_geometry, mesh_seed, point_cloud, sample_point_cloud
from conftest import TEST_DATA

MESHES = (TEST_DATA / "meshes").resolve()
COUNT = 2048


def sources() -> dict[str, str]:
    """file name -> what SOURCES.md says about loading it ('loads: 12 faces', 'fails to load: ...')."""
    rows = [line.split("|") for line in (MESHES / "SOURCES.md").read_text().splitlines() if line.startswith("| ")]
    return {row[1].strip(): row[-2].strip() for row in rows if (MESHES / row[1].strip()).is_file()}


SOURCES = sources()
FACES = {name: int(m[1]) for name, says in SOURCES.items() if (m := re.fullmatch(r"loads: (\d+) faces", says))}
POINTS_ONLY = ("points_ascii.ply", "points_bin.ply")
UNUSABLE = {"empty.stl": "mesh_empty", "empty.obj": "mesh_empty", "empty.ply": "mesh_empty",
            "TestScene.gltf": "mesh_unreadable"}


def item(name: str) -> tuple[bytes, str]:
    """A shared mesh file as point_cloud arguments (bytes, file type)."""
    return (MESHES / name).read_bytes(), name.rsplit(".", 1)[1].lower()


def cloud_of(data: bytes, file_type: str, count: int = COUNT):
    return point_cloud(data, file_type, count)


def obj(vertices, faces) -> bytes:
    """An OBJ file from vertices (n, 3) and 0-based triangles (m, 3)."""
    lines = [f"v {x} {y} {z}" for x, y, z in vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    return "\n".join(lines).encode() + b"\n"


def on_surface(mesh: trimesh.Trimesh, points: np.ndarray, close: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) points -> ((n,) distance to the mesh's surface in units of its bounding-box diagonal, (n,) the
    nearest face).

    rtree, which trimesh.proximity.closest_point needs, is not installed: each point is measured against the 32
    faces with the nearest centres, and against every face when none of those is within `close`. The mesh is
    scaled to a unit diagonal first: trimesh.triangles.closest_point compares with an absolute tolerance (1e-12)
    and puts points on small faces (bunny.ply's) on the wrong edge at the mesh's own scale."""
    centre, diagonal = mesh.bounds.mean(axis=0), np.linalg.norm(mesh.bounds[1] - mesh.bounds[0])
    unit = mesh.copy()
    unit.apply_translation(-centre)
    unit.apply_scale(1 / diagonal)
    points = (points.astype(np.float64) - centre) / diagonal
    k, rows = min(32, len(unit.faces)), np.arange(len(points))
    nearest = cKDTree(unit.triangles_center).query(points, k=k)[1].reshape(len(points), k)
    repeated = np.repeat(points, k, axis=0)
    closest = trimesh.triangles.closest_point(unit.triangles[nearest].reshape(-1, 3, 3), repeated)
    distances = np.linalg.norm(closest - repeated, axis=1).reshape(-1, k)
    best = distances.argmin(axis=1)
    distance, face = distances[rows, best], nearest[rows, best]
    far = distance >= close
    if far.any():
        distance[far] = trimesh.proximity.closest_point_naive(unit, points[far])[1]
    return distance, face


@contextmanager
def time_limit(seconds: int):
    def _fail(*_):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, _fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", sorted(FACES))
def test_every_loadable_mesh_gives_a_finite_cloud_of_its_faces(name):
    data, file_type = item(name)
    assert len(load_geometry(data, file_type).faces) == FACES[name]
    cloud = cloud_of(data, file_type)
    assert isinstance(cloud, np.ndarray), cloud
    assert cloud.shape == (COUNT, 3) and cloud.dtype == np.float32
    assert np.isfinite(cloud).all()


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_unusable_files_are_media_errors(name):
    error = cloud_of(*item(name))
    assert isinstance(error, MediaError)
    assert error.reason_class == UNUSABLE[name]
    if name == "TestScene.gltf":
        assert "TestScene.bin" in error.reason


@pytest.mark.parametrize("name", POINTS_ONLY)
@pytest.mark.parametrize("count", [COUNT, 3])
def test_point_files_are_sampled_from_their_points(name, count):
    points = np.asarray(trimesh.load(MESHES / name).vertices, np.float32)  # (5, 3)
    cloud = cloud_of(*item(name), count=count)
    assert cloud.shape == (count, 3) and cloud.dtype == np.float32
    matches = (cloud[:, None, :] == points[None, :, :]).all(axis=2)  # (count, 5)
    assert matches.any(axis=1).all()
    if count == COUNT:
        assert matches.any(axis=0).all()  # every point drawn
    else:
        assert len(np.unique(cloud, axis=0)) == count  # no repeats when the file has enough points


@pytest.mark.parametrize("name", ["bunny.ply", "teapot.stl", "Duck.glb", "featuretype.ply", "nested.glb",
                                  "two_objects.obj", "quadknot.obj"])
def test_points_lie_on_the_surface_trimesh_loads(name):
    mesh = trimesh.load(MESHES / name, force="mesh")
    distance, _ = on_surface(mesh, cloud_of(*item(name)))
    assert distance.max() < 1e-5


def test_faces_past_the_first_block_are_sampled_where_they_are():
    """A mesh of more faces than meshes.FACE_BLOCK whose only area is in its last faces: all points are there."""
    flat = [[0, 0, 0], [1, 0, 0], [2, 0, 0]]  # a zero-area triangle
    raised = [[0, 0, 5], [1, 0, 5], [0, 1, 5]]
    faces = np.zeros((FACE_BLOCK + 10, 3), np.int64) + [0, 1, 2]
    faces[-10:] = [3, 4, 5]
    cloud = sample_point_cloud(Geometry(vertices=np.array(flat + raised, np.float64), faces=faces), 1, 100)
    assert (cloud[:, 2] == 5).all()


def test_faces_are_picked_by_area():
    small = [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    large = [[10, 0, 0], [13, 0, 0], [10, 3, 0]]  # 9 times the area
    geometry = Geometry(vertices=np.array(small + large, np.float64), faces=np.array([[0, 1, 2], [3, 4, 5]]))
    n = 20_000
    cloud = sample_point_cloud(geometry, 7, n)
    on_small = int((cloud[:, 0] < 5).sum())
    expected, sd = n * 0.1, np.sqrt(n * 0.1 * 0.9)
    assert abs(on_small - expected) < 4 * sd
    inside = cloud[cloud[:, 0] < 5]
    assert (inside[:, :2] >= 0).all() and (inside[:, 0] + inside[:, 1] <= 1 + 1e-6).all()
    # uniform within the triangle: the mean is its centroid (sd of a coordinate is sqrt(1/18))
    assert np.abs(inside[:, :2].mean(axis=0) - 1 / 3).max() < 4 * np.sqrt(1 / 18 / len(inside))


def test_faces_are_picked_by_area_on_a_real_mesh():
    mesh = trimesh.load(MESHES / "teapot.stl", force="mesh")
    n = 20_000
    _, face = on_surface(mesh, cloud_of(*item("teapot.stl"), count=n))
    large = mesh.area_faces > np.median(mesh.area_faces)  # the larger half of the faces
    p = mesh.area_faces[large].sum() / mesh.area
    assert abs(large[face].sum() - n * p) < 4 * np.sqrt(n * p * (1 - p))


def test_clouds_are_deterministic_and_independent_of_the_batch():
    names = ["bunny.ply", "cube.off", "points_bin.ply", "Duck.glb", "empty.obj", "soup.stl"]
    items = [item(name) for name in names]
    first = [point_cloud(*i, COUNT) for i in items]
    again = [point_cloud(*i, COUNT) for i in items]
    reordered = [point_cloud(*i, COUNT) for i in items[::-1]][::-1]
    for name, a, b, c in zip(names, first, again, reordered):
        single = point_cloud(*item(name), COUNT)
        if isinstance(a, MediaError):
            assert all(isinstance(x, MediaError) and x.reason_class == a.reason_class for x in (b, c, single))
            continue
        for other in (b, c, single):
            assert np.array_equal(a, other), name
    data, file_type = item("bunny.ply")  # one more byte (a comment line) is another file: another sample
    assert not np.array_equal(first[0], point_cloud(data.replace(b"\n", b"\ncomment another file\n", 1), file_type, COUNT))


def test_mesh_seed_is_a_stable_64_bit_number_of_the_bytes():
    assert mesh_seed(b"ply bytes") == mesh_seed(b"ply bytes")
    assert mesh_seed(b"ply bytes") != mesh_seed(b"ply bytes ")
    assert 0 <= mesh_seed(b"x") < 2**64
    assert mesh_seed(b"gs://bucket/bunny.ply") == 0xb66ea2188dbd3ea6  # blake2b, not the per-process hash()


def test_faces_on_nan_vertices_are_dropped_and_the_rest_sampled():
    vertices = [[0, 0, 0], [1, 0, 0], [0, 1, 0], ["nan", 5, 5], [6, 6, 6]]
    data = obj(vertices, [[0, 1, 2], [0, 1, 3], [3, 4, 2]])
    geometry = load_geometry(data, "obj")
    assert len(geometry.faces) == 1 and geometry.dropped_faces == 2
    cloud = cloud_of(data, "obj")
    assert np.isfinite(cloud).all() and (cloud[:, 2] == 0).all()  # only the triangle at z = 0


def test_all_faces_on_nan_vertices_is_degenerate():
    error = cloud_of(obj([["nan", 0, 0], [1, 0, 0], [0, "inf", 0]], [[0, 1, 2]]), "obj")
    assert isinstance(error, MediaError) and error.reason_class == "mesh_degenerate"
    assert "all 1 faces" in error.reason


def test_zero_area_mesh_is_degenerate():
    collinear = obj([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]], [[0, 1, 2], [1, 2, 3]])
    error = cloud_of(collinear, "obj")
    assert isinstance(error, MediaError) and error.reason_class == "mesh_degenerate"


def test_a_degenerate_mesh_does_not_disturb_its_batch():
    good, bad = Geometry(vertices=np.eye(3), faces=np.array([[0, 1, 2]])), Geometry(vertices=np.zeros((3, 3)),
                                                                                   faces=np.array([[0, 1, 2]]))
    nan = Geometry(vertices=np.full((3, 3), np.nan), faces=np.array([[0, 1, 2]]))
    no_points = Geometry(points=np.zeros((0, 3)))
    clouds = [sample_point_cloud(g, s, 10) for g, s in zip([bad, good, nan, no_points], [1, 2, 3, 4])]
    assert [type(c) for c in clouds] == [MediaError, np.ndarray, MediaError, MediaError]
    assert [c.reason_class for c in clouds if isinstance(c, MediaError)] == ["mesh_degenerate"] * 2 + ["mesh_empty"]
    assert np.array_equal(clouds[1], sample_point_cloud(good, 2, 10))


@pytest.mark.parametrize("file_type", ["stl", "ply", "obj", "glb", "gltf", "off"])
@pytest.mark.parametrize("data", [b"", b"\x00\x01garbage\xff" * 40, bytes(range(256)) * 4, b"solid x\nfacet normal"])
def test_garbage_bytes_are_media_errors(file_type, data):
    error = cloud_of(data, file_type)
    assert isinstance(error, MediaError), error
    assert error.reason_class in ("mesh_unreadable", "mesh_empty")


PLY_HEADER = (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
              b"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n")


@pytest.mark.parametrize("data, file_type", [
    (obj([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 8]]), "obj"),
    (PLY_HEADER + b"3 0 1 7\n", "ply"),
    (b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "off"),
])
def test_faces_on_missing_vertices_are_unreadable(data, file_type):
    error = cloud_of(data, file_type)
    assert isinstance(error, MediaError) and error.reason_class == "mesh_unreadable"


def test_unknown_file_type_is_unreadable():
    error = cloud_of(b"v 0 0 0\n", "xyz")
    assert isinstance(error, MediaError) and error.reason_class == "mesh_unreadable" and "'xyz'" in error.reason


@pytest.mark.parametrize("data, file_type", [
    (b"OFF\n3 1000000000 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "off"),
    (b"OFF\n1000000000 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "off"),
    (b"ply\nformat ascii 1.0\nelement vertex 1000000000\nproperty float x\nproperty float y\nproperty float z\n"
     b"end_header\n0 0 0\n", "ply"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
     b"element face 1000000000\nproperty list uchar int vertex_indices\nend_header\n"
     + struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0) + struct.pack("<B3i", 3, 0, 1, 2), "ply"),
])
def test_headers_declaring_more_than_the_file_holds_are_refused_quickly(data, file_type):
    with time_limit(5):
        error = cloud_of(data, file_type)
    assert isinstance(error, MediaError) and error.reason_class == "mesh_unreadable"
    assert "1000000000" in error.reason and "truncated" in error.reason


@pytest.mark.parametrize("data,file_type", [
    (b"v 1e39 0 0\nv 1e39 1 0\nv 1e39 0 1\nf 1 2 3\n", "obj"),  # a finite area, far from the origin
    (b"OFF\n3 0 0\n1e300 0 0\n0 1 0\n0 0 1\n", "off"),
])
def test_coordinates_beyond_float32_are_degenerate_not_infinite_points(data, file_type):
    result = point_cloud(data, file_type, 64)
    assert isinstance(result, MediaError) and result.reason_class == "mesh_degenerate"
    assert "beyond float32's range" in str(result)
