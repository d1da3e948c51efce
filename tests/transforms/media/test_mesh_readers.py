"""transforms.media.mesh_readers against trimesh: on the real meshes of tests/data/meshes (see tests/data/SOURCES.md)
and on meshes built here in every format branch, the fast readers give trimesh's triangles with their corner
coordinates bit for bit (and its vertices, where trimesh splits none by texture coordinate or normal), or None
(the file is left to trimesh)."""
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from transforms.media.errors import MediaError
from transforms.media.mesh_readers import read_mesh, triangles
from transforms.media.meshes import load_geometry, mesh_seed, point_cloud, sample_point_cloud

MESHES = Path(__file__).resolve().parents[2] / "data" / "meshes"
# The real meshes of tests/data/meshes in the formats the fast readers cover (the others go to trimesh).
REAL = ("7_8ths_cube.stl", "angle_block.STL", "ballA.off", "box.obj", "comments.off", "cube_compressed.obj",
        "fandisk.obj", "fuze.ply", "jacked.obj", "mirror.ply", "multibody.stl", "nancolor.obj",
        "negative_indices.obj", "not_convex.obj", "plane.ply", "polygonfaces.obj", "quadknot.obj",
        "reference.ply", "sphere.ply", "suzanne.ply", "teapot.stl", "tube.obj", "two_objects.obj",
        "wallhole.obj", "whitespace.off")
FALLBACK = {"multibody.stl": "two solids", "comments.off": "colours after the faces", "whitespace.off": "colours",
            "fuze.ply": "texcoord lists", "box.obj": "two materials",
            "wallhole.obj": "faces continued on lines of their own"}


def file_type(name: str) -> str:
    return name.rsplit(".", 1)[1].lower()


def assert_same_as_trimesh(data: bytes, kind: str) -> None:
    """The fast reader accepts the file and load_geometry gives trimesh's surface (every triangle's corners) and
    point cloud bit for bit; its vertices and faces too unless trimesh split vertices by texture or normal."""
    assert read_mesh(data, kind) is not None
    fast, reference = load_geometry(data, kind), load_geometry(data, kind, fast=False)
    assert fast.vertices.dtype == reference.vertices.dtype == np.float64
    assert fast.faces.dtype == reference.faces.dtype == np.int64
    assert np.array_equal(fast.vertices[fast.faces], reference.vertices[reference.faces], equal_nan=True)
    if not split_by_trimesh(data, kind):
        assert np.array_equal(fast.vertices, reference.vertices, equal_nan=True)
        assert np.array_equal(fast.faces, reference.faces)
    assert fast.dropped_faces == reference.dropped_faces
    seed = mesh_seed(kind.encode())
    cloud, expected = sample_point_cloud(fast, seed, 2048), sample_point_cloud(reference, seed, 2048)
    if isinstance(expected, MediaError):
        assert isinstance(cloud, MediaError) and cloud.reason_class == expected.reason_class
    else:
        assert np.array_equal(cloud, expected)


def split_by_trimesh(data: bytes, kind: str) -> bool:
    """Whether trimesh gives some vertex one copy per texture coordinate or normal (OBJ vt/vn, PLY u/v)."""
    if kind == "obj":
        return b"\nvt " in data or b"\nvn " in data
    return kind == "ply" and any(f"property float {name}\n".encode() in data for name in ("s", "u", "texture_u"))


def same_outcome(data: bytes, kind: str) -> None:
    """Whatever the fast reader does with the file, point_cloud gives what the trimesh path gives."""
    try:
        reference = sample_point_cloud(load_geometry(data, kind, fast=False), mesh_seed(data), 64)
    except MediaError as error:
        reference = error
    cloud = point_cloud(data, kind, 64)
    if isinstance(reference, MediaError):
        assert isinstance(cloud, MediaError) and cloud.reason_class == reference.reason_class, (cloud, reference)
    else:
        assert np.array_equal(cloud, reference)


@pytest.mark.parametrize("name", [n for n in REAL if n not in FALLBACK])
def test_real_meshes_read_fast_are_bit_identical_to_trimesh(name):
    assert_same_as_trimesh((MESHES / name).read_bytes(), file_type(name))


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_real_meshes_the_fast_readers_leave_to_trimesh_still_load(name):
    data = (MESHES / name).read_bytes()
    assert read_mesh(data, file_type(name)) is None
    assert len(load_geometry(data, file_type(name)).faces)


# --- meshes built here, one per format branch ---------------------------------------------------------


def shape() -> trimesh.Trimesh:
    """A small irregular mesh: an icosphere pushed out of shape, with float32-unfriendly coordinates."""
    mesh = trimesh.creation.icosphere(subdivisions=1)
    mesh.vertices = mesh.vertices * [1.0, 2.5, 0.3] + np.sin(np.arange(len(mesh.vertices)))[:, None] / 7
    return mesh


def ply(vertices, faces_text: bytes, encoding: str = "ascii", extra: str = "", face_extra: str = "",
        index: str = "int", count: int | None = None) -> bytes:
    header = (f"ply\nformat {encoding} 1.0\ncomment built by a test\nelement vertex {len(vertices)}\n"
              f"property float x\nproperty float y\nproperty float z\n{extra}"
              f"element face {count}\nproperty list uchar {index} vertex_indices\n{face_extra}end_header\n")
    return header.encode() + faces_text


@pytest.mark.parametrize("kind, exported", [
    ("stl", lambda m: m.export(file_type="stl")),
    ("stl", lambda m: m.export(file_type="stl_ascii")),
    ("stl", lambda m: m.export(file_type="stl_ascii").replace("\n", "\r\n")),
    ("ply", lambda m: m.export(file_type="ply", encoding="binary")),
    ("ply", lambda m: m.export(file_type="ply", encoding="ascii")),
    ("off", lambda m: m.export(file_type="off")),
    ("obj", lambda m: m.export(file_type="obj", include_normals=False)),
    ("obj", lambda m: m.export(file_type="obj", include_normals=True)),
    ("obj", lambda m: m.export(file_type="obj", include_normals=True).replace("\n", "\r\n")),
])
def test_meshes_exported_by_trimesh(kind, exported):
    data = exported(shape())
    assert_same_as_trimesh(data.encode() if isinstance(data, str) else data, kind)


def test_binary_big_endian_ply_with_face_colours():
    mesh = shape()
    vertices = mesh.vertices.astype(">f4").tobytes()
    faces = np.zeros(len(mesh.faces), [("n", "u1"), ("i", ">i4", 3), ("red", "u1")])
    faces["n"], faces["i"], faces["red"] = 3, mesh.faces, 200
    data = ply(mesh.vertices, vertices + faces.tobytes(), "binary_big_endian", face_extra="property uchar red\n",
               count=len(mesh.faces))
    assert_same_as_trimesh(data, "ply")


def test_binary_ply_of_quads_and_pentagons():
    vertices = np.random.default_rng(3).random((12, 3))
    for size in (4, 5):
        corners = np.arange(6 * size).reshape(6, size) % 12
        faces = np.zeros(6, [("n", "u1"), ("i", "<u4", size)])
        faces["n"], faces["i"] = size, corners
        data = ply(vertices, vertices.astype("<f4").tobytes() + faces.tobytes(), "binary_little_endian",
                   index="uint", count=6)
        assert_same_as_trimesh(data, "ply")


def test_ascii_ply_of_mixed_polygons_and_texture_coordinates():
    vertices = np.random.default_rng(4).random((8, 3)).round(6)
    rows = "".join(f"{x} {y} {z} {x / 2} {y / 3}\n" for x, y, z in vertices)
    faces = "3 0 1 2\n4 1 2 3 4\n5 0 2 4 6 7\n3 5 6 7\n4 7 6 5 4\n"
    data = ply(vertices, (rows + faces).encode(), extra="property float s\nproperty float t\n", count=5)
    assert_same_as_trimesh(data, "ply")


OBJ_QUADS = b"""# two quads, a pentagon, a triangle: faces of several sizes
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 0 0 1.5e-1
v 2.25 0.5 1
v 7 7 7
o body
f 1 2 3 4
f 1 2 6 5
f -7 -6 -5 -4 -2
f 2 3 6
"""


@pytest.mark.parametrize("data", [
    OBJ_QUADS,
    b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 5 5 5\nf 1 2 3 4\nf 4 3 2 1\n",  # quads only
    b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nf 1 2 3 4 5\nf 5 4 3 2 1\n",  # pentagons only
    b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvn 0 0 1\nvn 0 1 0\nf -4//1 -3//1 -2//2\nf 1//2 3//1 4//2\n",
    b"mtllib a.mtl\nv 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 1 1 0 0 0 1\nv 0 1 0 1 1 1\nvt 0 0\nvt 1 0\nvt 1 1\n"
    b"vn 0 0 1\nusemtl red\ns off\nf 1/1/1 2/2/1 3/3/1 4/1/1\nf 4/3/1 3/2/1 1/1/1 2/2/1\n",
    b"v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvt 1 1\nf 1/1 2/2 3/1\nf 3/2 2/2 1/1\n",
])
def test_obj_face_forms(data):
    assert_same_as_trimesh(data, "obj")


OFF_GRID = b"OFF\n12 3 0\n" + b"".join(b"%d %d 0.%d\n" % (i % 4, i // 4, i) for i in range(12))


@pytest.mark.parametrize("data", [
    b"OFF\n5 3 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0.5 0.5 1\n3 0 1 4\n4 0 1 2 3\n3 2 3 4\n",
    b"OFF 4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n",
    OFF_GRID + b"6 11 1 2 10 4 5\n6 0 1 2 3 4 5\n6 6 7 8 9 10 11\n",  # hexagons only
    b"OFF\n3 1 0\n+0 -0 0e0\n1. .0 -0.0\n0 1E0 +1.5e-3\n+3 0 +1 02\n",  # signs, exponents, leading zeros
    b"COFF\n# a comment line\n3 1 0\n0 0 0 255 0 0 255\n1 0 0 0 255 0 255\n0 1 0 0 0 255 255\n3 0 1 2\n",
])
def test_off_variants(data):
    assert_same_as_trimesh(data, "off")


@pytest.mark.parametrize("data, kind", [
    (b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2 0.5 0.5 0.5\n", "off"),  # face colours
    (OFF_GRID + b"6 11 1 2 10 4 5\n3 0 1 2\n5 9 8 7 6 0\n", "off"),  # trimesh fails on mixed sizes above 4
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nusemtl a\nf 1 2 3\nusemtl b\nf 2 4 3\n", "obj"),  # two meshes
    (b"f 1 2 3\nusemtl a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "obj"),  # a face on line 1, then a material
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\n  v 1 1 0\nf 1 2 3\n", "obj"),  # an indented line
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nl 1 2\nf 1 2 3\n", "obj"),  # a statement the reader does not know
    (b"v 0 0 0\nv 1 0 0\nv 0 1 nan\nf 1 2 3\nf 1 2\n", "obj"),  # a face of two corners
    (b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\n"
     b"endsolid a\nsolid b\nfacet normal 0 0 1\nouter loop\nvertex 0 0 1\nvertex 1 0 1\nvertex 0 1 1\nendloop\n"
     b"endfacet\nendsolid b\n", "stl"),  # two solids: a scene
    (b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0 vertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\n"
     b"endsolid a\n", "stl"),  # two corners on a line
    (b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 12endsolid a\n",
     "stl"),  # trimesh reads the last corner as 0 1 1
])
def test_files_outside_the_fast_readers_are_left_to_trimesh(data, kind):
    assert read_mesh(data, kind) is None
    same_outcome(data, kind)


def test_non_finite_vertices_drop_their_faces_as_before():
    data = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv nan 1 1\nf 1 2 3\nf 1 2 4\n"
    assert_same_as_trimesh(data, "obj")
    assert load_geometry(data, "obj").dropped_faces == 1
    error = point_cloud(b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 inf\n3 0 1 2\n", "off", 16)
    assert isinstance(error, MediaError) and error.reason_class == "mesh_degenerate"


@pytest.mark.parametrize("data, kind", [
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "obj"),
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 -9\n", "obj"),
    (b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", "off"),
    (ply(np.zeros((3, 3)), b"0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n", count=1), "ply"),
    (ply(np.zeros((3, 3)), np.zeros(9, "<f4").tobytes() + struct.pack("<B3i", 3, 0, 1, -1),
         "binary_little_endian", count=1), "ply"),
    (ply(np.zeros((3, 3)), np.zeros(9, "<f4").tobytes() + struct.pack("<B3i", 3, 0, 1, 2) + b"x",
         "binary_little_endian", count=1), "ply"),  # a byte too many
    (b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 zero\n3 0 1 2\n", "off"),
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0x1\nf 1 2 3\n", "obj"),
    (b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 1 2 +\n", "off"),  # a lone sign: 0 to np.fromstring, an error to int()
    (ply(np.zeros((3, 3)), b"0 0 0\n1 0 0\n0 1 0\n3 1 2 -\n", count=1), "ply"),
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3 4\nf -1 -2 -\n", "obj"),
    (b"solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 q\nendloop\nendfacet\n"
     b"endsolid a\n", "stl"),
])
def test_hostile_files_are_still_dead_letters_of_the_same_reason(data, kind):
    assert read_mesh(data, kind) is None
    same_outcome(data, kind)
    assert isinstance(point_cloud(data, kind, 16), MediaError)


def test_triangles_split_polygons_in_trimesh_order():
    rng = np.random.default_rng(5)
    lengths = rng.integers(3, 8, 200)
    flat = rng.integers(0, 1000, lengths.sum())
    polygons = np.split(flat, np.cumsum(lengths)[:-1])
    expected = trimesh.geometry.triangulate_quads([list(p) for p in polygons])
    assert np.array_equal(triangles(flat, lengths, grouped=True), expected)
    face_by_face = [[p[0], p[1], p[2]] if len(p) == 3 else [[p[0], p[1], p[2]], [p[2], p[3], p[0]]] if len(p) == 4
                    else [[p[0], p[k], p[k + 1]] for k in range(1, len(p) - 1)] for p in polygons]
    flat_expected = np.concatenate([np.reshape(f, (-1, 3)) for f in face_by_face])
    assert np.array_equal(triangles(flat, lengths, grouped=False), flat_expected)


@pytest.mark.parametrize("size", [3, 5, 6, 9])
@pytest.mark.parametrize("grouped", [True, False])
def test_polygons_of_one_size_give_the_same_triangles_as_the_general_path(size, grouped):
    from transforms.media.mesh_readers import _triangles_of_any_sizes, triangles

    rng = np.random.default_rng(size)
    lengths = np.full(50, size)
    flat = rng.integers(0, 1000, lengths.sum())
    fast = triangles(flat, lengths, grouped)
    assert fast.dtype == flat.dtype and np.array_equal(fast, _triangles_of_any_sizes(flat, lengths, grouped))
