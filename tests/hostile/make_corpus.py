"""Write the hostile corpus: small CSV, image, mesh and path files that break readers, into a folder.

Each writer returns {case name: path} (or a URI). Files are generated, not committed, so binaries stay
out of git and the 20 MB field costs nothing until a test runs. `python tests/hostile/make_corpus.py DIR`
writes them all to DIR to look at.
"""
import base64
import gzip
import io
import json
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HEADER = "text,label\n"


def write_csvs(folder: Path, huge_field_bytes: int = 20 * 1024 * 1024) -> dict[str, Path]:
    """Two-column CSVs (a `text,label` header, then rows), each broken in one way -> {case: path}."""
    cases = {
        "bom": b"\xef\xbb\xbf" + HEADER.encode() + b"bom first,b\nbom second,b\n",
        "mixed_newlines": HEADER.encode() + b"crlf row,m\r\nlf row,m\ncr row,m\rlast row,m\r\n",
        "nul_bytes": HEADER.encode() + b"nul\x00inside,n\nclean nul-file row,n\n",
        "unterminated_quote": HEADER.encode() + b'closed row,u\n"open quote never closed,u\nmore,u\n',
        "huge_field": HEADER.encode() + b"short row,h\n" + b"h" * huge_field_bytes + b",h\n",
        "wide_row": HEADER.encode() + b"narrow row,w\n" + b",".join([b"c"] * 100_000) + b"\n",
        "typographic_quotes": (HEADER + "plain row,t\n\u201chello, world\u201d,t\n").encode(),
        "invalid_utf8": HEADER.encode() + b"good row,i\nbad \xff\xfe bytes,i\nanother good row,i\n",
        "empty": b"",
        "header_only": HEADER.encode(),
        "gzip_named_csv": gzip.compress((HEADER + "zipped row,g\n").encode(), mtime=0),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in cases.items():
        paths[name] = folder / f"{name}.csv"
        paths[name].write_bytes(data)
    return paths


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A ~100-byte greyscale PNG whose header declares width x height pixels (its data is one short row)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def sixteen_bit_png(side: int) -> bytes:
    """A black side x side 16-bit greyscale PNG: ~9 KB on disk per million pixels, 2 MB once decoded
    (issue 13's case, 9400: 88 megapixels, under --max-image-pixels)."""
    deflate = zlib.compressobj(1)
    row = bytes(1 + 2 * side)  # filter type 0, then the pixels
    pixels = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels)
            + _png_chunk(b"IEND", b""))


def _encoded(img: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def write_images(folder: Path) -> dict[str, Path]:
    """Image files, hostile and merely unusual -> {case: path}."""
    rng = np.random.default_rng(7)
    photo = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    jpeg = _encoded(photo, "JPEG", quality=90)
    frames = [Image.new("P", (48, 32), i) for i in (10, 80, 160)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    cases = {
        "truncated_jpeg.jpg": jpeg[: len(jpeg) // 2],
        "zero_bytes.jpg": b"",
        "bomb_50000x50000.png": bomb_png(),
        "png_named.jpg": _encoded(photo, "PNG"),
        "text_named.jpg": b"<html><body>Not Found</body></html>\n",
        "cmyk.jpg": _encoded(photo.convert("CMYK"), "JPEG"),
        "sixteen_bit.png": _encoded(Image.fromarray((rng.integers(0, 65535, (20, 30))).astype(np.uint16)), "PNG"),
        "animated.gif": gif.getvalue(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in cases.items():
        paths[name.rsplit(".", 1)[0]] = folder / name
        (folder / name).write_bytes(data)
    return paths


TETRAHEDRON = "0 0 0\n1 0 0\n0 1 0\n0 0 1\n"
TRIANGLE_DATA_URI = "data:application/octet-stream;base64," + base64.b64encode(
    np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()).decode()
TETRA_FACES = "3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n"


def fan_obj(corners: int, faces: int) -> bytes:
    """An OBJ of a tetrahedron's 4 vertices and `faces` polygons of `corners` corners each ("f 1 2 3 4 1 2 ..."):
    2 bytes on disk per triangle of the fans they are split into (issue 13's case)."""
    vertices = "".join(f"v {line}\n" for line in TETRAHEDRON.splitlines())
    fan = "f " + " ".join(str(1 + i % 4) for i in range(corners)) + "\n"
    return (vertices + fan * faces).encode()


def gltf(buffer_uri: str, byte_length: int = 36, count: int = 3) -> bytes:
    """A one-triangle glTF whose only buffer is at buffer_uri (count vertices read from byte_length bytes)."""
    return json.dumps({
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": count, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]}],
        "bufferViews": [{"buffer": 0, "byteLength": byte_length}],
        "buffers": [{"uri": buffer_uri, "byteLength": byte_length}],
    }).encode()


def node_chain_gltf(depth: int, buffer_uri: str) -> bytes:
    """A one-triangle glTF whose mesh hangs below a chain of `depth` nested nodes (~15 bytes per node):
    trimesh's scene graph takes time quadratic in the depth (10,000: ~1.5 s; 100,000: minutes)."""
    document = json.loads(gltf(buffer_uri))
    document["nodes"] = [{"children": [i + 1]} for i in range(depth)] + [{"mesh": 0}]
    return json.dumps(document, separators=(",", ":")).encode()


def write_meshes(folder: Path) -> dict[str, Path]:
    """Mesh files that are degenerate, lying or hostile -> {case: path}."""
    embedded = TRIANGLE_DATA_URI
    rng = np.random.default_rng(11)
    cases = {
        "nan_vertex.off": f"OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\nnan nan nan\n{TETRA_FACES}",
        "all_nan.off": "OFF\n3 1 0\nnan 0 0\n0 nan 0\n0 0 nan\n3 0 1 2\n",
        "zero_area.off": "OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n",
        "billion_faces.off": f"OFF\n4 1000000000 0\n{TETRAHEDRON}3 0 1 2\n",
        "billion_faces.ply": ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                              "property float z\nelement face 1000000000\nproperty list uchar int vertex_indices\n"
                              "end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"),
        "embedded_buffer.gltf": gltf(embedded),
        "self_buffer.gltf": gltf("self_buffer.gltf"),
        "passwd_buffer.gltf": gltf("../../etc/passwd"),
        "dev_zero_buffer.gltf": gltf("/dev/zero"),
        "http_buffer.gltf": gltf("http://169.254.169.254/latest/meta-data.bin"),
        "out_of_range_accessor.gltf": gltf(embedded, count=1_000_000_000),
        "deep_node_chain.gltf": node_chain_gltf(100_000, embedded),
        "garbage.stl": rng.bytes(4096),
        "garbage.ply": b"ply\n" + rng.bytes(4096),
        "garbage.glb": b"glTF" + rng.bytes(4096),
        "garbage.obj": rng.bytes(4096),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in cases.items():
        path = folder / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        paths[name.replace(".", "_")] = path
    return paths


def write_paths(root: Path) -> dict[str, str]:
    """Local paths a CSV in `root` may name that escape it or are not files -> {case: path as written}.

    Writes root/../outside.jpg (a real image outside root) and, inside root, a symlink to it, a symlink
    to /dev/zero and a FIFO. Pass --allowed-roots root,/dev so that /dev/zero is allowed but not a file.
    """
    root.mkdir(parents=True, exist_ok=True)
    outside = root.parent / "outside.jpg"
    outside.write_bytes(_encoded(Image.new("RGB", (8, 8), "red"), "JPEG"))
    (root / "link_out.jpg").symlink_to(outside)
    (root / "dev_zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(root / "fifo.jpg")
    return {
        "dotdot_escape": "../outside.jpg",
        "symlink_out": "link_out.jpg",
        "dev_zero": "dev_zero.jpg",
        "fifo": "fifo.jpg",
    }


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    for writer, sub in ((write_csvs, "csv"), (write_images, "images"), (write_meshes, "meshes"), (write_paths, "paths")):
        for case, where in writer(target / sub).items():
            print(f"{sub:7} {case:24} {where}")
