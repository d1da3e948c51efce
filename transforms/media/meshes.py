"""Meshes to point clouds: load a 3D file, sample points uniformly over its surface.

Plain OFF, OBJ, PLY and STL files are read by the vectorized readers of mesh_readers, which give exactly
trimesh's triangles and corner coordinates; every other file (glTF/GLB, anything those readers do not fully
understand) is loaded with trimesh, imported then (it takes about a second).

Sampling is vectorized per mesh (triangle areas FACE_BLOCK faces at a time, so that a mesh of millions of
triangles takes 8 bytes per face beyond its arrays, not a hundred; points in a few numpy calls); each
mesh draws from its own `np.random.default_rng(seed)`, seeded from the file's bytes, so a cloud is
bit-identical on every run, runner and machine, and the same file under two names gives the same cloud (one
document, as the same photo under two URLs is). Every file that cannot become a cloud is a MediaError; running out of memory raises
MemoryError (decode_sandbox makes it `decode_memory`).
"""
import dataclasses
import hashlib
import io
import json
import re
import struct
from typing import NamedTuple, Optional

import numpy as np

from schemas.modalities import MESH_EXTENSIONS
from transforms.media.errors import MediaError
from transforms.media.mesh_readers import read_mesh

MESH_TYPES = MESH_EXTENSIONS
TEXT_MESH_TYPES = ("obj", "off", "gltf")
FACE_BLOCK = 1 << 20
SURFACE, POINTS = "surface", "points"  # where a cloud came from: a mesh's triangles, a file's own points


@dataclasses.dataclass(frozen=True)
class Geometry:
    """A loaded file: a mesh, vertices (n, 3) float64 and triangles faces (m, 3) int64, or, for a file of
    points only, points (n, 3) float64. dropped_faces counts the triangles left out for non-finite vertices."""

    vertices: Optional[np.ndarray] = None
    faces: Optional[np.ndarray] = None
    points: Optional[np.ndarray] = None
    dropped_faces: int = 0


class Cloud(NamedTuple):
    """A (count, 3) float32 point cloud and where it came from: SURFACE (sampled over a mesh's triangles) or
    POINTS (drawn from a file of points only)."""

    points: np.ndarray
    origin: str


def mesh_seed(data: bytes) -> int:
    """A mesh file's bytes -> a stable 64-bit seed (their blake2b; the same on every run and machine)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def load_geometry(data: bytes, file_type: str, fast: bool = True) -> Geometry:
    """File bytes and extension ('off', 'obj', 'ply', 'stl', 'glb', 'gltf') -> Geometry.

    A scene is combined into one mesh with its transforms applied (like trimesh.load(force='mesh')); a file
    with points but no faces gives points. fast=False loads with trimesh even what mesh_readers reads (the
    reference those readers are tested against). Raises MediaError mesh_unreadable, mesh_empty or
    mesh_degenerate.
    """
    file_type = file_type.lower()
    if file_type not in MESH_TYPES:
        raise MediaError("mesh_unreadable", f"file type {file_type!r} is not a mesh format this pipeline reads; "
                                            f"convert it to one of {', '.join(MESH_TYPES)}.")
    _check_declared_counts(data, file_type)
    mesh = read_mesh(data, file_type) if fast else None
    if mesh is not None:
        return _mesh_geometry([mesh])
    import trimesh  # only here: importing it takes about a second, and most files take the fast readers
    try:
        # process=False: no vertex merging (sampling does not need it) and non-finite vertices stay visible.
        scene = trimesh.load_scene(file_obj=io.BytesIO(data), file_type=file_type, process=False,
                                   skip_materials=True)
        parts = []  # (vertices (n, 3) in scene coordinates, faces (m, 3) or None)
        for node in scene.graph.nodes_geometry:
            transform, name = scene.graph[node]
            part = scene.geometry[name]
            if isinstance(part, (trimesh.Trimesh, trimesh.PointCloud)) and len(part.vertices):
                vertices = trimesh.transform_points(np.asarray(part.vertices, np.float64), transform)
                faces = np.asarray(part.faces, np.int64) if isinstance(part, trimesh.Trimesh) else None
                parts.append((vertices, faces))
    except MemoryError:
        raise
    except Exception as error:  # trimesh raises anything from IndexError to struct.error on bad bytes
        raise MediaError("mesh_unreadable", _unreadable_reason(data, file_type, error)) from None
    meshes = [(v, f) for v, f in parts if f is not None and len(f)]
    if meshes:
        return _mesh_geometry(meshes)
    if not parts:
        raise MediaError("mesh_empty", f"the {file_type} file has no vertices, so there is nothing to sample; "
                                       "check that it was exported with its geometry.")
    points = np.concatenate([v for v, _ in parts])
    finite = np.isfinite(points).all(axis=1)
    if not finite.any():
        raise MediaError("mesh_degenerate", f"all {len(points)} points of the {file_type} file are NaN or infinite.")
    return Geometry(points=points[finite])


def _mesh_geometry(meshes: list[tuple[np.ndarray, np.ndarray]]) -> Geometry:
    """Meshes [(vertices (n_i, 3), faces (m_i, 3))] -> one Geometry without faces on non-finite vertices."""
    if len(meshes) == 1:
        vertices, faces = meshes[0]
    else:
        offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
        vertices = np.concatenate([v for v, _ in meshes])
        faces = np.concatenate([f + offset for (_, f), offset in zip(meshes, offsets)])
    if faces.min() < 0 or faces.max() >= len(vertices):
        outside = faces[(faces < 0) | (faces >= len(vertices))]
        raise MediaError("mesh_unreadable", f"a face refers to vertex {outside[0]}, but the file has vertices 0 to "
                                            f"{len(vertices) - 1} only; it is corrupt.")
    finite = np.isfinite(vertices).all(axis=1)
    if finite.all():
        return Geometry(vertices=vertices, faces=faces)
    keep = finite[faces].all(axis=1)
    if not keep.any():
        raise MediaError("mesh_degenerate", f"all {len(faces)} faces have non-finite (NaN or infinite) vertices.")
    return Geometry(vertices=vertices, faces=faces[keep], dropped_faces=int(len(faces) - keep.sum()))


def _check_declared_counts(data: bytes, file_type: str) -> None:
    """Refuse an OFF, PLY or binary STL header that declares more vertices or faces than the file has bytes
    for, and binary bytes in a text format (OBJ, OFF, glTF).

    trimesh trusts these counts: a truncated file loads as a smaller mesh, or as stray points."""
    if file_type in TEXT_MESH_TYPES and b"\0" in data[:65536]:
        raise MediaError("mesh_unreadable", f"the {file_type} file is not text (it holds NUL bytes), so it is not in "
                                            f"{file_type.upper()} format; check what the file really is.")
    declared = []  # (what, count, at least this many bytes each)
    if file_type == "stl" and not _binary_stl_fits(data) and not data.lstrip()[:5].lower() == b"solid":
        triangles = struct.unpack_from("<I", data, 80)[0] if len(data) >= 84 else 0
        raise MediaError("mesh_unreadable", f"the file is neither an ASCII STL (it does not start with 'solid') nor "
                                            f"a binary STL (whose header declares {triangles} triangles, which need "
                                            f"{84 + 50 * triangles} bytes, but the file has {len(data)}); it is "
                                            "truncated or corrupt.")
    if file_type == "off":
        match = re.search(rb"OFF\s*(\d+)\s+(\d+)", re.sub(rb"#[^\n]*", b"", data[:65536]))
        if match:
            declared = [("vertices", int(match[1]), 6), ("faces", int(match[2]), 8)]  # "0 0 0\n", "3 0 1 2\n"
    elif file_type == "ply" and b"end_header" in data[:65536]:
        header = data[: data.index(b"end_header")].decode("ascii", "replace").split("\n")
        per_value = 2 if any(line.startswith("format ascii") for line in header) else 1
        for line in header:
            words = line.split()
            if words[:1] == ["element"] and len(words) == 3 and words[2].isdigit():
                declared.append([words[1], int(words[2]), 0])
            elif words[:1] == ["property"] and declared:
                declared[-1][2] += per_value  # each value takes a byte in binary, a digit and a space in ASCII
    needed = sum(count * size for _, count, size in declared)
    if needed > len(data):
        counts = ", ".join(f"{count} {what}" for what, count, _ in declared)
        raise MediaError("mesh_unreadable", f"the {file_type.upper()} header declares {counts}, which need at "
                                            f"least {needed} bytes, but the file has {len(data)}; it is truncated "
                                            "or corrupt.")


def _binary_stl_fits(data: bytes) -> bool:
    """Whether the bytes are exactly an 80-byte header, a triangle count n and n 50-byte triangles."""
    return len(data) >= 84 and len(data) == 84 + 50 * struct.unpack_from("<I", data, 80)[0]


def _external_buffers(data: bytes) -> list[str]:
    """URIs of the buffers a glTF/GLB file keeps outside itself; [] when its JSON cannot be found or read
    (then trimesh's own message is the reason)."""
    if data[:4] == b"glTF":  # a GLB's JSON chunk follows its 12-byte header and the chunk's length and type
        if len(data) < 20:
            return []
        data = data[20:20 + struct.unpack_from("<I", data, 12)[0]]
    try:
        gltf = json.loads(data)
    except ValueError:  # not JSON, or not text
        return []
    buffers = gltf.get("buffers") if isinstance(gltf, dict) else None
    if not isinstance(buffers, list):
        return []
    uris = [b.get("uri") for b in buffers if isinstance(b, dict)]
    return [uri for uri in uris if isinstance(uri, str) and not uri.startswith("data:")]


def _unreadable_reason(data: bytes, file_type: str, error: Exception) -> str:
    """The sentence for a file trimesh could not read; names external glTF buffers when those are why."""
    external = _external_buffers(data) if file_type in ("gltf", "glb") else []
    if external:
        return (f"the {file_type} file keeps its geometry in external files {', '.join(external)} that are not "
                "inside it; embed the buffers (export as .glb) to use it.")
    message = " ".join(str(error).split())[:160] or "no message"
    return (f"trimesh cannot read this {file_type} file ({type(error).__name__}: {message}); check that the file is "
            f"a complete {file_type} file.")


def sample_point_cloud(geometry: Geometry, seed: int, count: int) -> np.ndarray | MediaError:
    """A geometry and its seed -> a (count, 3) float32 cloud, or a MediaError when there is nothing to sample.

    Mesh points are uniform over the surface (a face picked by area, then uniform barycentric coordinates,
    all draws vectorized); point-only files give `count` of their points (with replacement only when they
    have fewer). The draws come from default_rng(seed), so a mesh gives the same points on every run.
    Coordinates beyond float32's range (finite as float64) are a MediaError too: the cloud would hold inf."""
    with np.errstate(over="ignore"):  # checked just below
        cloud = _draw_cloud(geometry, np.random.default_rng(seed), count)
    if isinstance(cloud, np.ndarray) and not np.isfinite(cloud).all():
        return MediaError("mesh_degenerate", "the mesh's coordinates are beyond float32's range (about 3.4e38), "
                                             "so its points cannot be stored; rescale it.")
    return cloud


def _draw_cloud(geometry: Geometry, rng: np.random.Generator, count: int) -> np.ndarray | MediaError:
    """sample_point_cloud's draws, before the float32 range check."""
    if geometry.faces is None:
        return _sample_points(geometry.points, rng, count)
    cumulative = np.empty(len(geometry.faces))
    for start in range(0, len(cumulative), FACE_BLOCK):
        block = slice(start, start + FACE_BLOCK)
        cumulative[block] = _twice_areas(geometry.vertices, geometry.faces[block])
    np.cumsum(cumulative, out=cumulative)  # a running sum, in order: the same bits as on a copy
    total = cumulative[-1] if len(cumulative) else 0.0
    if not (np.isfinite(total) and total > 0):
        return MediaError("mesh_degenerate", f"the mesh's {len(geometry.faces)} faces have a total area of "
                                             f"{total / 2:g}, so there is no surface to sample; check its vertices.")
    draws = rng.random((count, 3))  # (count, 3): face, u, v
    picked = np.minimum(np.searchsorted(cumulative, draws[:, 0] * total, side="right"), len(cumulative) - 1)
    return _points_on_faces(geometry.vertices, geometry.faces[picked], draws[:, 1:])


def _sample_points(points: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray | MediaError:
    """(n, 3) points -> (count, 3) float32 of them, drawn without replacement when n >= count."""
    if not len(points):
        return MediaError("mesh_empty", "the file has no points; it cannot become a point cloud.")
    return points[rng.choice(len(points), count, replace=len(points) < count)].astype(np.float32)


def _twice_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Vertices (V, 3) and triangles (F, 3) -> (F,) twice each triangle's area (the cross product's norm).

    Written out elementwise, so a face's value has the same bits whatever faces are around it."""
    v0 = vertices[faces[:, 0]]
    e1, e2 = vertices[faces[:, 1]] - v0, vertices[faces[:, 2]] - v0  # (F, 3) each
    x = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1]
    y = e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
    z = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    return np.sqrt(x * x + y * y + z * z)


def _points_on_faces(vertices: np.ndarray, corners: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Vertices (V, 3), picked triangles (count, 3) and uniforms (count, 2) -> (count, 3) float32
    points v0 + u e1 + v e2, with (u, v) folded to (1 - u, 1 - v) when u + v > 1 (uniform on the triangle)."""
    origin = vertices[corners[..., 0]]  # (count, 3)
    uv = np.where(uv[..., :1] + uv[..., 1:] > 1, 1 - uv, uv)
    e1, e2 = vertices[corners[..., 1]] - origin, vertices[corners[..., 2]] - origin  # only the picked faces
    return (origin + uv[..., :1] * e1 + uv[..., 1:] * e2).astype(np.float32)


def file_cloud(data: bytes, file_type: str, count: int, min_points: int = 0) -> Cloud | MediaError:
    """A mesh file's bytes and type -> its Cloud of `count` points seeded by the bytes, or a MediaError.

    A file of points only (no surface to sample) with fewer than `min_points` distinct points is
    `too_few_points` (0: no minimum); meshes with faces are never refused for it."""
    try:
        geometry = load_geometry(data, file_type)
    except MediaError as error:
        return error
    if geometry.faces is None and min_points:
        distinct = len(np.unique(geometry.points, axis=0))
        if distinct < min_points:
            return MediaError("too_few_points", f"the {file_type} file has no faces and only {distinct} distinct "
                                                f"points, fewer than --min-points {min_points}; lower --min-points "
                                                "(0 turns the check off) to sample it anyway.")
    cloud = sample_point_cloud(geometry, mesh_seed(data), count)
    if isinstance(cloud, MediaError):
        return cloud
    return Cloud(cloud, POINTS if geometry.faces is None else SURFACE)


def point_cloud(data: bytes, file_type: str, count: int) -> np.ndarray | MediaError:
    """A mesh file's bytes and type -> a (count, 3) float32 point cloud seeded by the bytes, or a MediaError
    (file_cloud's points, with no minimum of distinct points)."""
    cloud = file_cloud(data, file_type, count)
    return cloud.points if isinstance(cloud, Cloud) else cloud
