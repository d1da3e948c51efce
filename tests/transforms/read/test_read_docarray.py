"""docarray DocList files (`.docs`) as --input, end to end: the document shapes of Finetuner's "Preparing a
DocumentArray" section, written with docarray 0.40 the way a user would (own document classes, save_binary,
or to_bytes gzip-compressed), our own docarray output read back in, and a file that is not a DocList.

Media the documents point at are the real files of tests/data.
"""
import gzip
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import pytest
import trimesh
from docarray import BaseDoc, DocList
from docarray.typing import NdArray
from PIL import Image, ImageOps
from pydantic import Field

import pipelines
from pipelines.cli import main
from conftest import TEST_DATA, assert_reconciled
from support.finetuner_docs import FinetunerChunk, FinetunerDoc

DATA = TEST_DATA.resolve()
IMAGE, CLIP_IMAGE, RELATIVE_IMAGE = "hopper_orientation_6.jpg", "flower.jpg", "05978.jpg"
MESH = "ballA.off"


# Finetuner-shaped documents, as a user of docarray 0.40 would declare them (not the project's classes).
Chunk = FinetunerChunk


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A folder with the real image and mesh files the documents name (one is named relative to it)."""
    folder = tmp_path_factory.mktemp("docarray")
    for name in (IMAGE, CLIP_IMAGE, RELATIVE_IMAGE):
        shutil.copy(DATA / "images" / name, folder / name)
    shutil.copy(DATA / "meshes" / MESH, folder / MESH)
    return folder


def seed_docs(folder: Path) -> tuple[DocList, list[tuple]]:
    """The seed page's shapes -> (the DocList, per document the expected
    (label, score, modality, text, uri, chunks as (modality, text, uri)))."""
    image, clip_image, mesh = str(folder / IMAGE), str(folder / CLIP_IMAGE), str(folder / MESH)
    docs = DocList[FinetunerDoc]([
        FinetunerDoc(text="pencil skirt slim fit available for sell", tags={"finetuner_label": "skirt"}),
        FinetunerDoc(text="stripped over-sized shirt for sell", tags={"finetuner_label": "t-shirt"}),
        FinetunerDoc(chunks=DocList[Chunk]([Chunk(text="the weather is nice"), Chunk(text="the weather is beautiful")]),
                     tags={"finetuner_score": 0.9}),
        FinetunerDoc(chunks=DocList[Chunk]([Chunk(text="the weather is nice"), Chunk(text="the weather is bad")]),
                     tags={"finetuner_score": 0.0}),
        FinetunerDoc(uri=image, tags={"finetuner_label": "skirt"}),
        FinetunerDoc(uri=RELATIVE_IMAGE, tags={"finetuner_label": "t-shirt"}),  # relative to the .docs file
        FinetunerDoc(uri=mesh, tags={"finetuner_label": "desk"}),
        FinetunerDoc(chunks=DocList[Chunk]([Chunk(text="pencil skirt slim fit available for sell", modality="text"),
                                            Chunk(uri=clip_image, modality="image")])),
    ])
    expected = [
        ("skirt", None, "text", "pencil skirt slim fit available for sell", None, None),
        ("t-shirt", None, "text", "stripped over-sized shirt for sell", None, None),
        (None, 0.9, "pair", None, None, (("text", "the weather is nice", None), ("text", "the weather is beautiful", None))),
        (None, 0.0, "pair", None, None, (("text", "the weather is nice", None), ("text", "the weather is bad", None))),
        ("skirt", None, "image", None, image, None),
        ("t-shirt", None, "image", None, str(folder / RELATIVE_IMAGE), None),
        ("desk", None, "mesh", None, mesh, None),
        (None, None, "pair", None, None, (("text", "pencil skirt slim fit available for sell", None),
                                          ("image", None, clip_image))),
    ]
    return docs, expected


def prepare(source, out: Path, *args: str) -> Path:
    sources = source if isinstance(source, list) else [source]
    inputs = [a for s in sources for a in ("--input", str(s))]
    assert main(["prepare", *inputs, "--output", str(out), *args]) == 0
    return out


def summary(row: dict) -> tuple:
    chunks = None if row["chunks"] is None else tuple((c["modality"], c["text"], c["uri"]) for c in row["chunks"])
    return row["label"], row["score"], row["modality"], row["text"], row["uri"], chunks


def by_row(out: Path) -> dict[int, dict]:
    return {r["source_row"]: r for r in pipelines.load_table(str(out)).to_pylist()}


reconciled = assert_reconciled


def upright_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return ImageOps.exif_transpose(img).size


def assert_seed_documents(out: Path, folder: Path, expected: list[tuple], source_file: str) -> None:
    rows = by_row(out)
    assert sorted(rows) == list(range(1, len(expected) + 1))
    assert {row: summary(r) for row, r in rows.items()} == dict(enumerate(expected, start=1))
    assert {r["source_file"] for r in rows.values()} == {source_file}
    for row in (5, 6):  # image documents: loaded, upright size (IMAGE carries EXIF orientation 6)
        path = Path(rows[row]["uri"])
        assert rows[row]["blob"] == path.read_bytes() and rows[row]["mime_type"] == "image/jpeg"
        assert (rows[row]["width"], rows[row]["height"]) == upright_size(path)
    points = np.asarray(rows[7]["point_cloud"], dtype=np.float32)
    assert points.shape == (2048, 3) and np.isfinite(points).all()
    bounds = trimesh.load(folder / MESH, force="mesh").bounds
    assert (points >= bounds[0] - 1e-4).all() and (points <= bounds[1] + 1e-4).all()
    text_chunk, image_chunk = rows[8]["chunks"]
    assert text_chunk["blob"] is None
    assert image_chunk["blob"] == (folder / CLIP_IMAGE).read_bytes()
    assert (image_chunk["width"], image_chunk["height"]) == upright_size(folder / CLIP_IMAGE) == (480, 360)
    for row in (1, 2, 3, 4):
        assert rows[row]["blob"] is None and rows[row]["point_cloud"] is None
    assert pipelines.load_dead_letters(str(out)).num_rows == 0
    c = reconciled(out)
    assert (c["rows_read"], c["documents_written"], c.get("documents_rejected", 0)) == (8, 8, 0)
    assert c["media_files"] == 4


def test_seed_page_shapes_saved_with_save_binary(media, tmp_path):
    docs, expected = seed_docs(media)
    path = media / "seed.docs"
    docs.save_binary(str(path))
    out = prepare(path, tmp_path / "out")
    manifest = pipelines.load_manifest(str(out))
    assert manifest["layout"] == "docarray"
    assert [i["url"] for i in manifest["inputs"]] == [str(path)]
    assert_seed_documents(out, media, expected, str(path))

    loaded = {d.source_row: d for d in pipelines.load_docs(str(out))}  # Finetuner's tags on the way out
    assert loaded[1].tags == {"finetuner_label": "skirt"}
    assert loaded[3].tags == {"finetuner_score": 0.9} and loaded[4].tags == {"finetuner_score": 0.0}
    assert [c.modality for c in loaded[8].chunks] == ["text", "image"] and loaded[8].tags == {}


def test_seed_page_shapes_gzip_compressed(media, tmp_path):
    docs, expected = seed_docs(media)
    data = docs.to_bytes(protocol="protobuf-array", compress="gzip")
    assert data[:2] == b"\x1f\x8b" and gzip.decompress(data)  # really gzip
    path = media / "seed-gzip.docs"
    path.write_bytes(data)
    out = prepare(path, tmp_path / "out")
    assert_seed_documents(out, media, expected, str(path))


def full(row: dict) -> tuple:
    """Everything a round trip keeps: summary plus the media fields, of the document and its chunks."""
    media = lambda r: (r["blob"], r["mime_type"], r["width"], r["height"], r["point_cloud"],  # noqa: E731
                       r["point_cloud_from"])
    chunks = None if row["chunks"] is None else tuple((c["modality"], c["text"], c["uri"], *media(c)) for c in row["chunks"])
    return (row["label"], row["score"], row["modality"], row["text"], row["uri"], *media(row), chunks)


def test_own_docarray_output_round_trips(media, tmp_path):
    docs, _ = seed_docs(media)
    path = media / "round-trip.docs"
    docs.save_binary(str(path))
    first = prepare(path, tmp_path / "first")
    shards = sorted((first / "docarray").glob("*.docs"))
    assert shards, "the first run wrote no docarray shard"

    second = prepare(shards, tmp_path / "second")
    one = sorted(map(full, pipelines.load_table(str(first)).to_pylist()), key=repr)
    two = sorted(map(full, pipelines.load_table(str(second)).to_pylist()), key=repr)
    assert len(one) == len(docs) and one == two
    assert [r[-2] for r in one if r[2] == "mesh"] == ["surface"]  # the read cloud keeps where it came from
    assert pipelines.load_dead_letters(str(second)).num_rows == 0
    c = reconciled(second)
    assert (c["rows_read"], c["documents_written"]) == (len(docs), len(docs))


def test_garbage_docs_file_is_one_dead_letter(media, tmp_path):
    garbage = tmp_path / "garbage.docs"
    garbage.write_bytes(b"this is not a docarray file\n" * 10)
    mixed = tmp_path / "mixed.docs"
    DocList[FinetunerDoc]([
        FinetunerDoc(text="a document that is fine", tags={"finetuner_label": "ok"}),
        FinetunerDoc(tags={"finetuner_label": "nothing"}),  # no content at all
        FinetunerDoc(uri=str(tmp_path / "missing.jpg"), tags={"finetuner_label": "gone"}),
    ]).save_binary(str(mixed))
    out = prepare([garbage, mixed], tmp_path / "out")

    dead = sorted(pipelines.load_dead_letters(str(out)).to_pylist(), key=lambda d: (d["source_file"], d["source_row"] or 0))
    assert [(d["source_file"], d["source_row"], d["stage"], d["reason_class"]) for d in dead] == [
        (str(garbage), None, "read", "docarray_unreadable"),
        (str(mixed), 2, "read", "empty_document"),
        (str(mixed), 3, "media", "missing"),
    ]
    assert str(garbage) in dead[0]["reason"]
    assert [summary(r) for r in pipelines.load_table(str(out)).to_pylist()] == [
        ("ok", None, "text", "a document that is fine", None, None)]
    c = reconciled(out)
    assert (c["rows_read"], c["dead_letters"], c["documents_rejected"], c["documents_written"]) == (4, 3, 1, 1)


class LoadedDoc(BaseDoc):
    """A document after docarray's load_uri_to_blob / load_uri_to_point_cloud_tensor, uri dropped."""

    blob: Optional[bytes] = None
    tensor: Optional[NdArray] = None
    tags: Dict[str, Any] = Field(default_factory=dict)


def test_scores_in_docarray_inputs_are_checked_like_csv_scores(tmp_path):
    """BUG (fails today): README, Errors: "a score that is not a number in [0, 1] ... becomes a dead letter"
    (reason_class `score`). transforms/read_docarray.py doc_to_row only does float(tags['finetuner_score']):
    5.0 and NaN become documents with those scores, and 'high' raises a ValueError that is reported as
    reason_class `empty_document` ("could not convert string to float")."""
    path = tmp_path / "scores.docs"
    DocList[FinetunerDoc]([
        FinetunerDoc(chunks=DocList[Chunk]([Chunk(text="a"), Chunk(text="b")]), tags={"finetuner_score": 0.5}),
        FinetunerDoc(chunks=DocList[Chunk]([Chunk(text="a"), Chunk(text="c")]), tags={"finetuner_score": 5.0}),
        FinetunerDoc(chunks=DocList[Chunk]([Chunk(text="a"), Chunk(text="d")]), tags={"finetuner_score": float("nan")}),
        FinetunerDoc(chunks=DocList[Chunk]([Chunk(text="a"), Chunk(text="e")]), tags={"finetuner_score": "high"}),
    ]).save_binary(str(path))
    out = prepare(path, tmp_path / "out")

    scores = {row: r["score"] for row, r in by_row(out).items()}
    letters = {d["source_row"]: d["reason_class"] for d in pipelines.load_dead_letters(str(out)).to_pylist()}
    assert (scores, letters) == ({1: 0.5}, {2: "score", 3: "score", 4: "score"})
    reconciled(out)


def test_docs_holding_only_a_blob_or_a_point_cloud_get_a_media_modality(media, tmp_path):
    """BUG (fails today): README: docarray inputs may carry `blob` and `tensor` (an (N, 3) point cloud).
    A document with only an image blob, or only a point cloud (what load_uri_to_blob /
    load_uri_to_point_cloud_tensor leave when the uri is dropped), has no text, yet schemas/docarray_docs.py
    infer_modality falls back to 'text' for it: it is written as a text document with text null."""
    path = tmp_path / "loaded.docs"
    points = np.random.default_rng(0).random((2048, 3)).astype(np.float32)
    DocList[LoadedDoc]([
        LoadedDoc(blob=(media / IMAGE).read_bytes(), tags={"finetuner_label": "skirt"}),
        LoadedDoc(tensor=points, tags={"finetuner_label": "desk"}),
    ]).save_binary(str(path))
    out = prepare(path, tmp_path / "out")

    rows = by_row(out)
    assert rows[1]["blob"] == (media / IMAGE).read_bytes() and rows[1]["text"] is None
    np.testing.assert_array_equal(np.asarray(rows[2]["point_cloud"], dtype=np.float32), points)
    assert (rows[1]["modality"], rows[2]["modality"]) == ("image", "mesh")
    assert rows[2]["point_cloud_from"] is None  # read with its cloud, from a document that does not say


def test_garbage_docs_file_alone(tmp_path):
    garbage = tmp_path / "garbage.docs"
    garbage.write_bytes(bytes(range(256)) * 4)
    out = prepare(garbage, tmp_path / "out")
    (letter,) = pipelines.load_dead_letters(str(out)).to_pylist()
    assert (letter["source_file"], letter["stage"], letter["reason_class"]) == (str(garbage), "read", "docarray_unreadable")
    assert pipelines.load_table(str(out)).num_rows == 0
    assert reconciled(out)["rows_read"] == 1
