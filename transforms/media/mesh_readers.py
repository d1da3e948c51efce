"""Fast mesh readers: a file's bytes -> (vertices (n, 3) float64, triangles (m, 3) int64), vectorized with numpy.

Each reader gives the surface trimesh's loader gives with process=False: the same triangles in the same order,
each with the same corner coordinates (polygons split as trimesh splits them, the same number parser), so
areas and sampled points are bit-identical; or None for a file it does not fully understand, which is left to
trimesh (meshes.load_geometry). One difference, invisible to sampling: where trimesh gives a vertex one copy
per texture coordinate or normal (unmerge_faces), these readers keep one vertex. They accept only plain,
regular files: ASCII text with "\\n" line ends, one mesh per file, every face index in range.

trimesh (with scipy and networkx, about a second to import) is imported only for OFF files with comments
(its comment_strip), so a run of plain meshes never loads it.
"""
import re
from typing import Optional

import numpy as np

Mesh = tuple[np.ndarray, np.ndarray]  # vertices (n, 3) float64, triangles (m, 3) int64

_PLAIN = bytes([9, 10, *range(32, 127)])  # tab, newline, printable ASCII; anything else (\r, NUL, ...): trimesh
_DECIMAL = b"\t\n +-.0123456789Ee"  # numbers that np.fromstring and numpy's str -> number cast read alike
_STL_RECORD = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
_PLY_TYPES = {"char": "i1", "uchar": "u1", "short": "i2", "ushort": "u2", "int": "i4", "int8": "i1",
              "int16": "i2", "int32": "i4", "int64": "i8", "uint": "u4", "uint8": "u1", "uint16": "u2",
              "uint32": "u4", "uint64": "u8", "float": "f4", "float16": "f2", "float32": "f4", "float64": "f8",
              "double": "f8"}  # trimesh.exchange.ply's names
_PLY_INDEX = ("vertex_indices", "vertex_index")


def read_mesh(data: bytes, file_type: str) -> Optional[Mesh]:
    """File bytes and extension -> (vertices, triangles) as trimesh would load them, or None: let trimesh read it.
    Running out of memory raises MemoryError, as it does on trimesh's path (meshes.load_geometry)."""
    reader = _READERS.get(file_type)
    try:
        mesh = reader(data) if reader else None
    except (ValueError, IndexError, KeyError, TypeError, OverflowError):
        return None  # malformed in a way the checks did not foresee: trimesh's error message is the better one
    if mesh is None:
        return None
    vertices, faces = mesh
    if not len(faces) or faces.min() < 0 or faces.max() >= len(vertices):
        return None
    return np.ascontiguousarray(vertices, np.float64), np.ascontiguousarray(faces, np.int64)


# --- text helpers ------------------------------------------------------------------------------------


class _Lines:
    """Plain text (tab, newline and printable bytes only) cut into lines and tokens, all as arrays: tokens[i]
    is the number of tokens on line i, begin[i] its offset and first[i] the offset of its first token (-1 on
    a blank line)."""

    def __init__(self, text: bytes):
        self.bytes = np.frombuffer(text, np.uint8)
        space = self.bytes <= 32
        newlines = np.flatnonzero(self.bytes == 10)
        starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))
        self.begin = np.concatenate([[0], newlines + 1])
        if len(self.begin) > 1 and self.begin[-1] == len(text):
            self.begin = self.begin[:-1]  # the text ends with a newline: no line after it
        self.length = np.diff(np.append(self.begin, len(text)))  # each line's bytes, its newline included
        token_line = np.searchsorted(newlines, starts)  # the newlines before a token: its line
        self.tokens = np.bincount(token_line, minlength=len(self.begin))
        self.first = np.full(len(self.begin), -1)
        leading = np.concatenate([[True], token_line[1:] != token_line[:-1]])
        self.first[token_line[leading]] = starts[leading]

    def starts_with(self, rows: np.ndarray, words: tuple) -> np.ndarray:
        """(rows,) index in `words` of the word each line's first token starts with (-1: none); words of at
        most 8 bytes, compared as little-endian integers of the line's first 8 bytes."""
        padded = np.concatenate([self.bytes, np.full(8, 32, np.uint8)])
        window = np.ndarray((len(self.bytes) + 1,), "<u8", padded, 0, (1,))  # 8 bytes from every offset
        heads = window[self.first[rows]]
        kinds = np.full(len(rows), -1)
        for kind, word in reversed(list(enumerate(words))):  # the first word that matches wins
            mask = (1 << (8 * len(word))) - 1
            kinds[(heads & np.uint64(mask)) == np.uint64(int.from_bytes(word, "little"))] = kind
        return kinds

    def block(self, keep: np.ndarray, blank: Optional[np.ndarray] = None) -> bytes:
        """The lines where keep (lines,) is true, as one text; blank (bytes,) true bytes become spaces."""
        text = self.bytes if blank is None else np.where(blank, np.uint8(32), self.bytes)
        return text[np.repeat(keep, self.length)].tobytes()


def _plain(data: bytes) -> bool:
    return not data.translate(None, _PLAIN)


def _numbers(text: bytes, count: int, dtype=np.float64) -> Optional[np.ndarray]:
    """Whitespace-separated numbers parsed by np.fromstring (trimesh's parser) -> (count,) array, or None when
    the text holds another number of them or ends in a lone sign, which np.fromstring reads as the integer 0
    where int() fails (a lone sign before a number joins it: a number short)."""
    values = np.fromstring(text, dtype=dtype, sep=" ") if count else np.zeros(0, dtype)
    return values if len(values) == count and text.rstrip()[-1:] not in (b"+", b"-") else None


def triangles(flat: np.ndarray, lengths: np.ndarray, grouped: bool) -> np.ndarray:
    """Polygons (flat corner indices, their lengths, each >= 3) -> (m, 3) triangles as trimesh makes them: a
    quad gives (0, 1, 2), (2, 3, 0), a larger polygon the fan (0, k, k + 1). grouped: in the order of
    trimesh.geometry.triangulate_quads (triangles, first halves of quads, second halves, fans), otherwise
    face by face (trimesh's OBJ reader on faces of mixed sizes)."""
    if len(lengths) and lengths[0] != 4 and (lengths == lengths[0]).all():
        return _fans_of_one_size(flat.reshape(len(lengths), lengths[0]))
    return _triangles_of_any_sizes(flat, lengths, grouped)


def _fans_of_one_size(faces: np.ndarray) -> np.ndarray:
    """(f, n) polygons, n != 4 -> their fans (0, k, k + 1), face by face (the only order when no face is a
    quad), built by broadcasting: about 24 bytes per triangle where the general path takes ~120."""
    f, n = faces.shape
    fans = np.empty((f, n - 2, 3), faces.dtype)
    fans[:, :, 0] = faces[:, :1]
    fans[:, :, 1] = faces[:, 1:-1]
    fans[:, :, 2] = faces[:, 2:]
    return fans.reshape(-1, 3)


def _triangles_of_any_sizes(flat: np.ndarray, lengths: np.ndarray, grouped: bool) -> np.ndarray:
    """triangles() for polygons of mixed sizes (or quads)."""
    per_face = lengths - 2
    face = np.repeat(np.arange(len(lengths)), per_face)
    k = np.arange(len(face)) - np.repeat(np.cumsum(per_face) - per_face, per_face)  # triangle within its face
    start, size = (np.cumsum(lengths) - lengths)[face], lengths[face]
    corners = np.stack([start, start + k + 1, start + k + 2], axis=1)
    second_half = (size == 4) & (k == 1)
    corners[second_half] = (start[second_half, None] + [2, 3, 0])
    result = flat[corners]
    if grouped:
        kind = np.select([size == 3, (size == 4) & (k == 0), size == 4], [0, 1, 2], 3)
        result = result[np.argsort(kind, kind="stable")]
    return result


# --- STL ---------------------------------------------------------------------------------------------


def read_stl(data: bytes) -> Optional[Mesh]:
    """Binary STL (80-byte header, triangle count, 50-byte records) or ASCII STL with one solid."""
    if len(data) >= 84 and len(data) == 84 + 50 * int(np.frombuffer(data, "<u4", 1, 80)[0]):
        corners = np.frombuffer(data, _STL_RECORD, offset=84)["corners"].reshape(-1, 3)
        return corners.astype(np.float64), np.arange(len(corners)).reshape(-1, 3)
    text = data.strip().lower().replace(b"\r\n", b"\n")
    if not _plain(text):
        return None
    if text.count(b"solid") != 2 or text.count(b"endsolid") != 1 or not text.startswith(b"solid"):
        return None  # one solid only: trimesh makes a scene of several
    solid = text[:text.index(b"endsolid")]
    lines = _Lines(solid)
    filled = np.flatnonzero(lines.tokens > 0)
    vertex_lines = filled[lines.starts_with(filled, (b"vertex ",)) == 0]
    if (lines.tokens[vertex_lines] != 4).any() or solid.count(b"vertex") != len(vertex_lines):
        return None  # trimesh reads what follows each "vertex" up to the line's end: 3 numbers on its line
    if not len(vertex_lines) or len(vertex_lines) % 3 or solid.rfind(b"\n") < solid.rfind(b"vertex"):
        return None  # trimesh drops the last byte of a last vertex line that runs into "endsolid"
    keep = np.zeros(len(lines.tokens), bool)
    keep[vertex_lines] = True
    blank = np.zeros(len(lines.bytes), bool)
    for offset in range(6):  # the word "vertex" itself
        blank[lines.first[vertex_lines] + offset] = True
    values = _numbers(lines.block(keep, blank), 3 * len(vertex_lines))
    if values is None:
        return None
    vertices = values.reshape(-1, 3)
    return vertices, np.arange(len(vertices)).reshape(-1, 3)


# --- OFF ---------------------------------------------------------------------------------------------


def read_off(data: bytes) -> Optional[Mesh]:
    """OFF: counts, then vertex lines (x y z first) and face lines (n i_1 .. i_n), comments as trimesh strips them."""
    data = data.replace(b"\r\n", b"\n")
    if not _plain(data):
        return None
    parts = re.split("(COFF|OFF)", _strip_comments(data.decode("ascii")).strip(), maxsplit=1)
    if len(parts) != 3:
        return None
    text = parts[2].encode("ascii")
    lines = _Lines(text)
    filled = np.flatnonzero(lines.tokens > 0)
    if not len(filled):
        return None
    header = np.array(_line(text, lines, filled[0]).split(), dtype=np.int64)
    vertex_count, face_count = int(header[0]), int(header[1])
    rows = filled[1:]
    if vertex_count < 1 or face_count < 1 or len(rows) < vertex_count + face_count:
        return None
    vertex_rows, face_rows = rows[:vertex_count], rows[vertex_count:vertex_count + face_count]
    width = lines.tokens[vertex_rows]
    if (width != width[0]).any() or width[0] < 3:
        return None
    vertices = _off_values(lines, vertex_rows, np.float64).reshape(vertex_count, -1)[:, :3]
    values = _off_values(lines, face_rows, np.int64)
    starts = np.cumsum(lines.tokens[face_rows]) - lines.tokens[face_rows]
    lengths = values[starts]
    if (lengths + 1 != lines.tokens[face_rows]).any() or (lengths < 3).any():
        return None  # trailing values (colours) or faces of fewer than 3 corners
    if (lengths > 4).any() and (lengths != lengths[0]).any():
        return None  # trimesh fails on polygons of more than 4 corners among faces of other sizes
    corners = np.delete(values, starts)
    return vertices, triangles(corners, lengths, grouped=True)


def _strip_comments(text: str) -> str:
    """OFF text -> the text trimesh's OFF reader sees: unchanged without a '#', else trimesh's comment_strip."""
    if "#" not in text:
        return text
    from trimesh.util import comment_strip
    return comment_strip(text)


def _line(text: bytes, lines: _Lines, row: int) -> str:
    end = text.find(b"\n", lines.begin[row])
    return text[lines.begin[row]:end if end >= 0 else len(text)].decode("ascii")


def _off_values(lines: _Lines, rows: np.ndarray, dtype) -> np.ndarray:
    """The tokens of some lines parsed as trimesh's OFF reader parses them (numpy's str -> number cast), with
    np.fromstring when they are plain decimals (the same values, 2x faster); raises ValueError on a bad one."""
    keep = np.zeros(len(lines.tokens), bool)
    keep[rows] = True
    text = lines.block(keep)
    values = None if text.translate(None, _DECIMAL) else _numbers(text, int(lines.tokens[rows].sum()), dtype)
    return np.array(text.decode("ascii").split(), dtype=dtype) if values is None else values


# --- PLY ---------------------------------------------------------------------------------------------


def read_ply(data: bytes) -> Optional[Mesh]:
    """PLY with a vertex element (x, y, z) then a face element (one list of vertex indices): binary little or
    big endian, or ASCII."""
    end = data.find(b"end_header\n", 0, 65536)
    header = _ply_header(data[:end - 1]) if end > 0 and data[end - 1:end] == b"\n" else None
    if header is None:
        return None
    encoding, vertex, face, count = header
    body = data[end + len(b"end_header\n"):]
    if encoding == "ascii":
        return _ply_ascii(body, vertex, face, count)
    endian = "<" if encoding == "binary_little_endian" else ">"
    vertex_type = np.dtype([(name, endian + kind) for name, kind in vertex])
    if len(body) < count[0] * vertex_type.itemsize:
        return None
    vertices = np.frombuffer(body, vertex_type, count[0])
    size = _face_size(body, count[0] * vertex_type.itemsize, face, endian)
    if size is None:
        return None
    face_type = np.dtype([(name, endian + kind) if not isinstance(kind, tuple) else
                          (name, [("count", endian + kind[0]), ("index", endian + kind[1], (size,))])
                          for name, kind in face])
    if len(body) != count[0] * vertex_type.itemsize + count[1] * face_type.itemsize or size < 3:
        return None  # trimesh refuses another length ("PLY is unexpected length!")
    faces = np.frombuffer(body, face_type, count[1], count[0] * vertex_type.itemsize)[_index_name(face)]
    if (faces["count"] != size).any():
        return None  # faces of several sizes: trimesh reads every face with the first one's size
    return _ply_mesh(vertices, faces["index"].astype(np.int64))


def _ply_header(header: bytes) -> Optional[tuple]:
    """A PLY header -> (encoding, vertex [(name, type)], face [(name, type or (count type, index type))],
    (vertex count, face count)), or None unless it is the plain vertex-then-face layout this reader knows."""
    if not _plain(header):
        return None
    lines = [line.split() for line in header.decode("ascii").split("\n")]
    if lines[0] != ["ply"] or len(lines[1]) != 3 or lines[1][0] != "format" or lines[1][1] not in (
            "ascii", "binary_little_endian", "binary_big_endian"):
        return None
    elements = []  # [name, count, [(property, type)]]
    for words in lines[2:]:
        if "end_header" in words or not words:
            return None  # trimesh ends the header on this line, or fails on an empty one
        if words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append([words[1], int(words[2]), []])
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in _PLY_TYPES:
            elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
        elif (words[0] == "property" and elements and len(words) == 5 and words[1] == "list"
              and words[2] in _PLY_TYPES and words[3] in _PLY_TYPES):
            elements[-1][2].append((words[4], (_PLY_TYPES[words[2]], _PLY_TYPES[words[3]])))
        else:
            return None
    if [e[0] for e in elements] != ["vertex", "face"] or not elements[0][1] or not elements[1][1]:
        return None
    vertex, face = elements[0][2], elements[1][2]
    vertex_names, face_names = [name for name, _ in vertex], [name for name, _ in face]
    lists = [(name, kind) for name, kind in face if isinstance(kind, tuple)]
    if (len(set(vertex_names)) < len(vertex) or len(set(face_names)) < len(face)  # trimesh keeps the last
            or not {"x", "y", "z"} <= set(vertex_names) or any(isinstance(kind, tuple) for _, kind in vertex)
            or "texcoord" in face_names or len(lists) != 1 or set(face_names) & set(_PLY_INDEX) != {lists[0][0]}
            or any(kind[0] == "f" for kind in lists[0][1])):
        return None  # not one list of integer vertex indices per face, or not x, y, z per vertex
    return lines[1][1], vertex, face, (elements[0][1], elements[1][1])


def _index_name(face: list) -> str:
    return next(name for name, kind in face if isinstance(kind, tuple))


def _face_size(body: bytes, offset: int, face: list, endian: str) -> Optional[int]:
    """The first face's corner count, at `offset` in body (trimesh reads every face with it), or None when
    the file ends before it."""
    for _, kind in face:
        if isinstance(kind, tuple):
            count = np.dtype(endian + kind[0])
            return int(np.frombuffer(body, count, 1, offset)[0]) if len(body) >= offset + count.itemsize else None
        offset += np.dtype(kind).itemsize
    return None


def _ply_mesh(columns, faces: np.ndarray) -> Mesh:
    """Vertex records (or {name: column} in the header's types) and faces (n, k) -> the mesh, polygons split
    into triangles as trimesh splits them."""
    vertices = np.stack([np.asarray(columns[axis]).astype(np.float64) for axis in "xyz"], axis=1)
    if faces.shape[1] != 3:
        faces = triangles(faces.ravel(), np.full(len(faces), faces.shape[1]), grouped=True)
    return vertices, faces


def _ply_ascii(body: bytes, vertex: list, face: list, count: tuple) -> Optional[Mesh]:
    """ASCII PLY rows: one vertex a line, then one face a line (the list property only: n i_1 .. i_n)."""
    if len(face) != 1 or not _plain(body):
        return None
    lines = _Lines(body)
    vertex_count, face_count = count
    if len(lines.tokens) < vertex_count + face_count or (lines.tokens[:vertex_count] != len(vertex)).any():
        return None  # trimesh takes rows line by line, blank lines too
    keep = np.zeros(len(lines.tokens), bool)
    keep[:vertex_count] = True
    values = _numbers(lines.block(keep), vertex_count * len(vertex))
    if values is None:
        return None
    table = values.reshape(vertex_count, len(vertex))
    columns = {name: table[:, i].astype(kind) for i, (name, kind) in enumerate(vertex)}  # as the header types
    face_tokens = lines.tokens[vertex_count:vertex_count + face_count]
    keep[:] = False
    keep[vertex_count:vertex_count + face_count] = True
    values = _numbers(lines.block(keep), int(face_tokens.sum()), np.int64)  # trimesh: float64, then the index type
    keep[:] = False
    keep[vertex_count + face_count:] = True  # trimesh parses every line after the header
    if values is None or (face_tokens < 4).any() or _numbers(lines.block(keep), int(lines.tokens[keep].sum())) is None:
        return None
    starts = np.cumsum(face_tokens) - face_tokens
    if (values[starts] != face_tokens - 1).any():
        return None  # a face whose count is not its number of indices
    corners = np.delete(values, starts)
    if corners.min() < 0 or corners.max() >= vertex_count:
        return None  # in range, an index has the same value parsed as an integer, a float or the index type
    lengths = face_tokens - 1
    if (lengths == lengths[0]).all():
        return _ply_mesh(columns, corners.reshape(face_count, lengths[0]))
    return _ply_mesh(columns, triangles(corners, lengths, grouped=True))  # trimesh splits mixed faces first


# --- OBJ ---------------------------------------------------------------------------------------------

_OBJ_WORDS = (b"v ", b"vn ", b"vt ", b"f ", b"o ", b"g ", b"s ", b"#", b"mtllib ", b"usemtl ")


def read_obj(data: bytes) -> Optional[Mesh]:
    """OBJ: `v x y z [r g b]` lines and `f` lines of v, v/vt, v//vn or v/vt/vn corners (negative indices count
    from the end, as trimesh counts them), one material at most; the vertices faces use, in file order."""
    data = data.strip().replace(b"\r\n", b"\n")  # as trimesh reads it
    if not _plain(data) or b"\\" in data or data.count(b"usemtl") > 1:
        return None
    lined = b"\n" + data  # a face on the first line is a face too
    if b"usemtl" in data and lined.find(b"usemtl") > lined.find(b"\nf "):
        return None  # a material after faces splits them into two meshes
    text = data + b"\n"
    lines = _Lines(text)
    filled = np.flatnonzero(lines.tokens > 0)
    if (lines.first[filled] != lines.begin[filled]).any():
        return None  # an indented line: trimesh does not see it
    kinds = np.full(len(lines.tokens), -1)
    kinds[filled] = lines.starts_with(filled, _OBJ_WORDS)
    if (kinds[filled] < 0).any():
        return None  # a statement this reader does not know
    blank = np.zeros(len(lines.bytes), bool)
    blank[lines.first[filled]] = True  # the keywords of v, vn, vt and f lines are one or two letters
    blank[lines.first[filled] + 1] = np.isin(kinds[filled], (1, 2))
    v = _obj_table(lines, kinds == 0, blank, 3)
    if v is None or not len(v) or any(_obj_table(lines, kinds == k, blank) is None for k in (1, 2)):
        return None  # no vertices, or normals / texture coordinates trimesh would not read either
    corners = _obj_faces(lines, kinds == 3, blank)
    if corners is None:
        return None
    if corners.min() < -len(v) or corners.max() >= len(v):
        return None
    keep = np.zeros(len(v), bool)  # the vertices faces use, in file order (trimesh drops the others)
    keep[corners] = True
    inverse = np.zeros(len(v), np.int64)
    inverse[keep] = np.arange(keep.sum())
    corners = inverse[corners]
    if corners.shape[1] != 3:  # faces of one size: trimesh.Trimesh splits them (triangulate_quads)
        corners = triangles(corners.ravel(), np.full(len(corners), corners.shape[1]), grouped=True)
    return v[keep][:, :3], corners


def _obj_table(lines: _Lines, keep: np.ndarray, blank: np.ndarray, least: int = 1) -> Optional[np.ndarray]:
    """The values of the lines where keep is true (their keywords blanked) -> (lines, width) float64, (0, 3)
    without such lines, None when the lines hold different numbers of values or fewer than `least`."""
    width = lines.tokens[keep] - 1
    if not len(width):
        return np.zeros((0, 3))
    if (width != width[0]).any() or width[0] < least:
        return None
    text = lines.block(keep, blank)
    if b"+e" in text or b"-e" in text:
        text = text.replace(b"+e", b"e").replace(b"-e", b"e")  # as trimesh reads them
    values = _numbers(text, int(width.sum()))
    return None if values is None else values.reshape(len(width), width[0])


def _obj_faces(lines: _Lines, keep: np.ndarray, blank: np.ndarray) -> Optional[np.ndarray]:
    """The f lines -> their corners' vertex indices as trimesh reads them (texture and normal indices left out):
    1-based indices made 0-based, negative ones left as they are; (faces, corners) arrays for faces of one
    size, (triangles, 3) face by face for faces of several sizes (only without `/` forms)."""
    rows = np.flatnonzero(keep)
    if not len(rows):
        return None
    text = lines.block(keep, blank)
    groups = lines.tokens[rows] - 1
    if b"/" not in text:
        values = _numbers(text, int(groups.sum()), np.int64)
        if values is None or (groups < 3).any():
            return None
        values[values > 0] -= 1
        if (groups == groups[0]).all():
            return values.reshape(len(rows), groups[0])
        return triangles(values, groups, grouped=False)
    split = _Lines(text.replace(b"/", b" "))
    columns = split.tokens[: len(rows)]
    if (columns != columns[0]).any() or groups[0] < 3 or (groups != groups[0]).any():
        return None  # trimesh reads faces of mixed forms one by one
    values = _numbers(text.replace(b"/", b" "), int(columns.sum()), np.int64)
    if values is None:
        return None
    values[values > 0] -= 1
    table, group, width = values.reshape(len(rows), columns[0]), int(groups[0]), int(columns[0])
    return table[:, np.arange(group) * (width // group)]  # the vertex of each corner; vt and vn are not needed


_READERS = {"stl": read_stl, "off": read_off, "ply": read_ply, "obj": read_obj}
