"""schemas.modalities: how a value's modality is told from its URI scheme and extension."""
import numpy as np
import pyarrow as pa
import pytest

from schemas.modalities import (IMAGE_EXTENSIONS, KINDS, MESH_EXTENSIONS, classify, majority, modality_of_extension,
                                uri_extension)


def kinds(*values) -> list[str]:
    return [KINDS[code] for code in classify(pa.array(values, pa.string()))]


@pytest.mark.parametrize("value, kind", [
    ("a.jpg", "image"),
    ("photos/A.JPG", "image"),                      # extensions in any case
    ("https://x.org/y/b.png?s=1&t=2", "image"),     # a URL's ?query is not part of the extension
    ("https://x.org/b.webp#frag", "image"),
    ("gs://bucket/k.ply", "mesh"),
    ("m.OBJ", "mesh"),
    ("x.stl#part", "mesh"),
    ("  padded.png  ", "image"),                    # surrounding spaces are not part of the value
    ("a photo of my dog.jpg", "text"),              # a sentence that ends in .jpg stays text
    ("line one\nb.jpg", "text"),                    # so does anything with a line break
    (".jpg", "text"),                               # an extension alone names no file
    ("notes.txt", "text"),
    ("folder/", "text"),
    ("https://x.org/page", "text"),
    ("image.jpg.txt", "text"),
])
def test_classify(value, kind):
    assert kinds(value) == [kind]


def test_classify_every_known_extension_and_nulls():
    values = [f"f.{e}" for e in IMAGE_EXTENSIONS + MESH_EXTENSIONS] + [None, ""]
    expected = ["image"] * len(IMAGE_EXTENSIONS) + ["mesh"] * len(MESH_EXTENSIONS) + ["text", "text"]
    assert kinds(*values) == expected


def test_classify_returns_uint8_codes_for_an_empty_array():
    codes = classify(pa.array([], pa.string()))
    assert codes.dtype == np.uint8 and codes.shape == (0,)


@pytest.mark.parametrize("codes, kind", [
    ([], "text"),
    ([1, 1, 0], "image"),
    ([2, 2, 2, 1], "mesh"),
    ([1, 2], "text"),        # a tie between media kinds
    ([0, 1], "text"),        # a tie with text
    ([0, 0, 2], "text"),
])
def test_majority(codes, kind):
    assert majority(np.array(codes, dtype=np.uint8)) == kind


@pytest.mark.parametrize("uri, extension", [
    ("https://x.org/a/b.JPG?size=.png", "jpg"),   # the query is not read, even when it looks like a file
    ("https://x.org/p.jpg#f.png", "jpg"),
    ("s3://b/dir.v2/mesh.Ply", "ply"),
    ("images/cat.jpeg", "jpeg"),
    ("archive.tar.gz", "gz"),
    ("no_extension", ""),
    ("https://x.org/folder/", ""),
])
def test_uri_extension(uri, extension):
    assert uri_extension(uri) == extension


@pytest.mark.parametrize("extension, modality", [
    ("jpg", "image"), ("TIFF", "image"), ("Gif", "image"),
    ("glb", "mesh"), ("OFF", "mesh"),
    ("txt", None), ("", None), ("jpgx", None),
])
def test_modality_of_extension(extension, modality):
    assert modality_of_extension(extension) == modality


def test_extension_rule_agrees_with_classify_for_urls():
    urls = ["https://h/a.PNG?x=1", "https://h/m.obj#top", "gs://b/c.tif", "https://h/readme.md"]
    by_extension = [modality_of_extension(uri_extension(u)) or "text" for u in urls]
    assert by_extension == kinds(*urls) == ["image", "mesh", "image", "text"]
