"""transforms.write.webdataset: documents written as WebDataset tar shards read back with the webdataset
package to the same texts, image bytes, point clouds and metadata; a two-chunk document holds its chunks'
content; the same documents give the same bytes."""
import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pytest
import webdataset
from PIL import Image

from conftest import TEST_DATA
from schemas.documents import DOCUMENT_SCHEMA
from transforms.write.shard_writer import write_shard
from transforms.write.webdataset import WebDatasetShards, image_extension

CLOUD = np.arange(12, dtype=np.float32).reshape(4, 3) / 7


def image(name: str, mime_type: str) -> dict:
    return {"uri": f"images/{name}", "blob": (TEST_DATA / "images" / name).read_bytes(), "mime_type": mime_type}


def documents() -> pa.Table:
    """A text, three images, a mesh's point cloud, a CLIP pair and a scores pair, with their metadata."""
    common = {"source_file": "in.csv", "split": "train"}
    rows = [
        {"id": "0a", "label": "greeting", "modality": "text", "text": "Hello, wörld!", **common},
        {"id": "0b", "label": "hopper", "modality": "image", **image("hopper.jpg", "image/jpeg"), **common},
        {"id": "0c", "label": "apple", "modality": "image", **image("apple.png", "image/png"), **common},
        {"id": "0d", "label": "flower", "modality": "image", **image("flower.webp", "image/webp"), **common},
        {"id": "0e", "label": "cube", "modality": "mesh", "uri": "meshes/cube.off", "point_cloud": CLOUD.tolist(),
         "point_cloud_from": "surface", **common},
        {"id": "0f-k", "modality": "pair", "chunks": [{"modality": "text", "text": "A flower."},
                                                       {"modality": "image", **image("flower.jpg", "image/jpeg")}],
         **common},
        {"id": "10", "modality": "pair", "score": 0.25, "chunks": [{"modality": "text", "text": "one"},
                                                                    {"modality": "text", "text": "two"}], **common},
    ]
    return pa.Table.from_pylist([dict(row, source_row=i + 1) for i, row in enumerate(rows)], schema=DOCUMENT_SCHEMA)


def metadata(row: dict) -> dict:
    return {k: row[k] for k in ("id", "label", "score", "modality", "uri", "source_file", "source_row", "split")}


def samples(path) -> dict:
    """{key: sample} of a shard read with webdataset, texts, json and .npy decoded, images as bytes."""
    return {s["__key__"]: s for s in webdataset.WebDataset(str(path), shardshuffle=False).decode()}


def test_round_trip_through_webdataset(tmp_path):
    table = documents()
    path = tmp_path / "webdataset" / "b00000-0000.tar"
    record = write_shard(WebDatasetShards, table, str(path))
    assert (record.folder, record.rows, record.bytes) == ("webdataset", 7, path.stat().st_size)
    read = samples(path)
    rows = {row["id"]: row for row in table.to_pylist()}
    assert list(read) == list(rows)
    fields = {key: sorted(k for k in sample if not k.startswith("__")) for key, sample in read.items()}
    assert fields == {"0a": ["json", "txt"], "0b": ["jpg", "json"], "0c": ["json", "png"], "0d": ["json", "webp"],
                      "0e": ["json", "npy"], "0f-k": ["jpg", "json", "txt"], "10": ["0.txt", "1.txt", "json"]}
    assert all(read[key]["json"] == metadata(row) for key, row in rows.items())
    assert read["0a"]["txt"] == "Hello, wörld!"
    for key, extension in (("0b", "jpg"), ("0c", "png"), ("0d", "webp")):
        assert read[key][extension] == rows[key]["blob"]
    assert read["0e"]["npy"].dtype == np.float32 and np.array_equal(read["0e"]["npy"], CLOUD)
    assert (read["0f-k"]["txt"], read["0f-k"]["jpg"]) == ("A flower.", rows["0f-k"]["chunks"][1]["blob"])
    assert (read["10"]["0.txt"], read["10"]["1.txt"], read["10"]["json"]["score"]) == ("one", "two", 0.25)


def test_images_decode_with_webdataset_s_image_decoder(tmp_path):
    path = tmp_path / "shard.tar"
    write_shard(WebDatasetShards, documents(), str(path))
    decoded = {s["__key__"]: s for s in webdataset.WebDataset(str(path), shardshuffle=False).decode("pil")}
    assert decoded["0b"]["jpg"].size == Image.open(TEST_DATA / "images" / "hopper.jpg").size
    assert isinstance(decoded["0c"]["png"], Image.Image)


def test_the_same_documents_give_the_same_bytes_with_neutral_headers(tmp_path):
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    write_shard(WebDatasetShards, documents(), str(first))
    shard = WebDatasetShards(str(second))
    for batch in documents().to_batches(max_chunksize=2):
        shard.write(batch)
    assert shard.close().rows == 7
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as archive:
        members = archive.getmembers()
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}
    names = [m.name for m in members]
    assert names[:2] == ["0a.json", "0a.txt"] and names[-3:] == ["10.0.txt", "10.1.txt", "10.json"]


def test_a_shard_without_documents_is_an_empty_archive(tmp_path):
    path = tmp_path / "empty.tar"
    assert write_shard(WebDatasetShards, DOCUMENT_SCHEMA.empty_table(), str(path)).rows == 0
    with tarfile.open(path) as archive:
        assert archive.getmembers() == []


def test_a_null_blob_or_cloud_writes_no_file(tmp_path):
    path = tmp_path / "shard.tar"
    row = {"id": "0a", "modality": "image", "uri": "gone.jpg", "label": "x"}
    write_shard(WebDatasetShards, pa.Table.from_pylist([row], schema=DOCUMENT_SCHEMA), str(path))
    with tarfile.open(path) as archive:
        assert archive.getnames() == ["0a.json"]
        assert json.load(archive.extractfile("0a.json"))["uri"] == "gone.jpg"


@pytest.mark.parametrize("mime_type, extension", [
    ("image/jpeg", "jpg"), ("image/png", "png"), ("image/webp", "webp"), ("image/gif", "gif"),
    ("image/tiff", "tiff"), ("image/x-icon", "ico"), ("image/x-tga", "tga"), (None, "bin"), ("", "bin"),
])
def test_image_extension(mime_type, extension):
    assert image_extension(mime_type) == extension


def test_npy_files_are_numpy_s_own_format(tmp_path):
    path = tmp_path / "shard.tar"
    write_shard(WebDatasetShards, documents(), str(path))
    with tarfile.open(path) as archive:
        assert np.array_equal(np.load(io.BytesIO(archive.extractfile("0e.npy").read())), CLOUD)
