"""Tell whether a CSV value is text, an image URI or a mesh URI, from its URI scheme and file extension."""
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff")
MESH_EXTENSIONS = ("off", "obj", "ply", "stl", "glb", "gltf")

# A value is a media URI when it has no line break and ends (before any ?query or #fragment) in a known
# extension, as a path (`a/b.jpg`, `b.jpg`) or a URL (`https://x/b.jpg?s=1`).
_URI_TAIL = r"^[^\r\n]*?[^\s/\\]\.({ext})(?:[?#][^\s]*)?$"
_IMAGE_RE = _URI_TAIL.format(ext="|".join(IMAGE_EXTENSIONS))
_MESH_RE = _URI_TAIL.format(ext="|".join(MESH_EXTENSIONS))
_NO_SPACES_OR_URL = r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://\S+|\S+)$"


def classify(values: pa.Array) -> np.ndarray:
    """String values (n,) -> array (n,) of 'text', 'image' or 'mesh' (object dtype).

    A value with spaces counts as media only when it is a URL (scheme://...) or a path without spaces
    around the extension; sentences that happen to end in ".jpg" stay text.
    """
    values = pc.utf8_trim_whitespace(values)
    uri_like = pc.match_substring_regex(values, _NO_SPACES_OR_URL)
    image = pc.and_(uri_like, pc.match_substring_regex(values, _IMAGE_RE, ignore_case=True))
    mesh = pc.and_(uri_like, pc.match_substring_regex(values, _MESH_RE, ignore_case=True))
    out = np.full(len(values), "text", dtype=object)
    out[np.asarray(image.fill_null(False))] = "image"
    out[np.asarray(mesh.fill_null(False))] = "mesh"
    return out


def majority(kinds: np.ndarray) -> str:
    """The most common kind in (n,) kinds; ties and an empty sample give 'text'."""
    if not kinds.size:
        return "text"
    names, counts = np.unique(kinds, return_counts=True)
    best = names[counts == counts.max()]
    return "text" if "text" in best or len(best) > 1 else str(best[0])


def is_remote(uri: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", uri) is not None and not uri.startswith("file://")
