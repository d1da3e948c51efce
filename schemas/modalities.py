"""The modalities of a document and how a value's modality is told: text, an image URI or a mesh URI,
from its URI scheme and file extension. The one home of the modality names and the extension rule."""
from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlparse

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

KINDS = ("text", "image", "mesh")  # a content column's (or chunk's) modality; codes index this tuple
PAIR = "pair"  # the modality of a two-chunk document
# File extensions (lower case, no dot) that make a URI an image or a mesh.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff")
MESH_EXTENSIONS = ("off", "obj", "ply", "stl", "glb", "gltf")

# A value is a media URI when it has no line break and ends (before any ?query or #fragment) in a known
# extension, as a path (`a/b.jpg`, `b.jpg`) or a URL (`https://x/b.jpg?s=1`).
_URI_TAIL = r"^[^?#\r\n]*?[^\s/\\?#]\.({ext})(?:[?#][^\s]*)?$"
_IMAGE_RE = _URI_TAIL.format(ext="|".join(IMAGE_EXTENSIONS))
_MESH_RE = _URI_TAIL.format(ext="|".join(MESH_EXTENSIONS))
_NO_SPACES_OR_URL = r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://\S+|\S+)$"

# Cheap first pass: only values ending in a 3-4 character extension (maybe before ?query) can be media.
_MAYBE_MEDIA = r"\.[A-Za-z0-9]{3,4}\s*(?:[?#]\S*)?$"


def classify(values: pa.Array) -> np.ndarray:
    """String values (n,) -> (n,) uint8 codes indexing KINDS: text, image or mesh.

    A value with spaces counts as media only when it is a URL (scheme://...); sentences that happen to
    end in ".jpg" stay text. The precise patterns run only on the values the cheap first pass keeps.
    """
    import pyarrow as pa  # here: a decoder child imports this module for the names alone, and never classifies
    import pyarrow.compute as pc

    codes = np.zeros(len(values), dtype=np.uint8)
    maybe = np.flatnonzero(np.asarray(pc.fill_null(pc.match_substring_regex(values, _MAYBE_MEDIA), False)))
    if not maybe.size:
        return codes
    subset = pc.utf8_trim_whitespace(values.take(pa.array(maybe)))
    uri_like = pc.match_substring_regex(subset, _NO_SPACES_OR_URL)
    for code, pattern in ((1, _IMAGE_RE), (2, _MESH_RE)):
        hit = pc.and_(uri_like, pc.match_substring_regex(subset, pattern, ignore_case=True))
        codes[maybe[np.asarray(hit.fill_null(False))]] = code
    return codes


def majority(codes: np.ndarray) -> str:
    """The most common kind among (n,) codes; ties and an empty sample give 'text'."""
    if not codes.size:
        return "text"
    counts = np.bincount(codes, minlength=len(KINDS))
    best = np.flatnonzero(counts == counts.max())
    return "text" if 0 in best or len(best) > 1 else KINDS[best[0]]


def uri_extension(uri: str) -> str:
    """The lower-case extension of a URI's path, without the dot ('' when none)."""
    return posixpath.splitext(urlparse(uri).path if "://" in uri else uri)[1].lstrip(".").lower()


def modality_of_extension(extension: str) -> Optional[str]:
    """'image' or 'mesh' for a media file extension (no dot, any case); None for others."""
    extension = extension.lower()
    return "image" if extension in IMAGE_EXTENSIONS else "mesh" if extension in MESH_EXTENSIONS else None
