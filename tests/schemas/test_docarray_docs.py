"""Arrow rows <-> docarray documents <-> `.docs` shard bytes."""
import hashlib
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from docarray import DocList

from schemas.docarray_docs import (
    ChunkDoc,
    TrainingDoc,
    docs_from_bytes,
    docs_to_bytes,
    docs_to_table,
    infer_modality,
    table_to_docs,
)
from schemas.documents import DOCUMENT_SCHEMA
from support.finetuner_docs import FinetunerChunk, FinetunerDoc

ROOT = Path(__file__).resolve().parents[2]
CLOUD = np.random.default_rng(0).standard_normal((2048, 3)).astype(np.float32)


def _row(**fields) -> dict:
    """Only the given fields; the rest of DOCUMENT_SCHEMA is null."""
    return {name: fields.get(name) for name in DOCUMENT_SCHEMA.names}


def _chunk(**fields) -> dict:
    names = ["modality", "text", "uri", "blob", "mime_type", "width", "height", "point_cloud", "point_cloud_from"]
    return {name: fields.get(name) for name in names}


ROWS = {
    "labeled_text": _row(id="t1", label="skirt", modality="text", text="pencil skirt slim fit",
                         source_file="train.csv", source_row=3),
    "image": _row(id="i1", label="t-shirt", modality="image", uri="data/shirt.png", blob=b"\x89PNG\x00\x01",
                  mime_type="image/png", width=224, height=160, source_file="images.csv", source_row=0),
    "mesh": _row(id="m1", label="desk", modality="mesh", uri="data/desk-001.off", point_cloud=CLOUD.tolist(),
                 point_cloud_from="surface"),
    "pair": _row(id="p1", score=0.9, modality="pair", source_file="pairs.jsonl", source_row=7, chunks=[
        _chunk(modality="text", text="the weather is nice"),
        _chunk(modality="image", uri="https://x/skirt-1.png", blob=b"img", mime_type="image/png", width=2, height=3),
    ]),
    "values_null_label": _row(id="v1", score=0.0, modality="text", text="only a score"),
}


def _table(*names: str) -> pa.Table:
    return pa.Table.from_pylist([ROWS[n] for n in names], schema=DOCUMENT_SCHEMA)


@pytest.mark.parametrize("name", list(ROWS))
def test_arrow_docs_arrow_round_trip(name):
    table = _table(name)
    back = docs_to_table(table_to_docs(table))
    assert back.schema == DOCUMENT_SCHEMA
    assert back.equals(table)


def test_docs_fields():
    docs = table_to_docs(_table(*ROWS))
    text, image, mesh, pair, values = docs
    assert text.id == "t1" and text.tags == {"finetuner_label": "skirt"} and text.chunks is None
    assert image.blob == b"\x89PNG\x00\x01" and (image.width, image.height) == (224, 160)
    assert mesh.tensor.dtype == np.float32 and mesh.tensor.shape == (2048, 3)
    np.testing.assert_array_equal(mesh.tensor, CLOUD)
    assert (mesh.point_cloud_from, text.point_cloud_from) == ("surface", None)
    assert pair.tags == {"finetuner_score": 0.9} and isinstance(pair.chunks, DocList)
    assert [c.modality for c in pair.chunks] == ["text", "image"] and isinstance(pair.chunks[0], ChunkDoc)
    assert values.tags == {"finetuner_score": 0.0}  # null label -> no key


def test_bytes_round_trip():
    table = _table(*ROWS)
    docs = table_to_docs(table)
    back = docs_from_bytes(docs_to_bytes(docs))
    assert [d.id for d in back] == [d.id for d in docs]
    np.testing.assert_array_equal(back[2].tensor, CLOUD)
    assert back[2].tensor.dtype == np.float32
    assert back[3].chunks[1].blob == b"img"
    assert docs_to_table(back).equals(table)


def test_raw_and_zlib_shards_read_alike():
    """Shards are raw DocList protobuf now; those of datasets published before are zlib over the same bytes."""
    table = _table(*ROWS)
    raw = docs_to_bytes(table_to_docs(table))
    for data in (raw, zlib.compress(raw), b""):
        back = docs_to_table(docs_from_bytes(data))
        assert back.equals(table if data else table.schema.empty_table())


def test_empty_values_round_trip():
    """No rows; and empty-but-not-null values ('' text, b'' blob, 0 width, empty cloud, no chunks) stay so."""
    empty = pa.Table.from_pylist([], schema=DOCUMENT_SCHEMA)
    assert docs_to_table(docs_from_bytes(docs_to_bytes(table_to_docs(empty)))).equals(empty)
    table = pa.Table.from_pylist([_row(id="e", label="", modality="mesh", text="", blob=b"", width=0,
                                       point_cloud=[], chunks=[])], schema=DOCUMENT_SCHEMA)
    back = docs_from_bytes(docs_to_bytes(table_to_docs(table)))
    assert back[0].tensor.shape == (0, 3) and len(back[0].chunks) == 0
    assert docs_to_table(back).equals(table)


_DIGEST = (
    "import hashlib, sys; sys.path.insert(0, 'tests'); sys.path.insert(0, 'tests/schemas'); import test_docarray_docs as t; "
    "print(hashlib.sha256(t.docs_to_bytes(t.table_to_docs(t._table(*t.ROWS)))).hexdigest())"
)


def test_bytes_are_deterministic_across_processes():
    table = _table(*ROWS)
    data = docs_to_bytes(table_to_docs(table))
    assert data == docs_to_bytes(table_to_docs(table))
    assert docs_to_bytes(docs_from_bytes(data)) == data
    # docarray's own to_bytes orders protobuf map entries differently in each process; ours must not.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    digests = {
        subprocess.run([sys.executable, "-c", _DIGEST], cwd=ROOT, env=env, capture_output=True,
                       text=True, check=True).stdout.strip()
        for _ in range(2)
    }
    assert digests == {hashlib.sha256(data).hexdigest()}


def test_finetuner_shaped_docs():
    docs = DocList[FinetunerDoc]([
        FinetunerDoc(id="a", text="stripped over-sized shirt", tags={"finetuner_label": "t-shirt"}),
        FinetunerDoc(id="b", uri="https://x/skirt-1.PNG?v=2", tags={"finetuner_label": 7}),
        FinetunerDoc(id="c", uri="s3://bucket/table-001.off"),
        FinetunerDoc(id="d", tags={"finetuner_score": 1}, chunks=DocList[FinetunerChunk]([
            FinetunerChunk(text="pencil skirt", modality="text"),
            FinetunerChunk(uri="https://x/skirt-1.png", modality="image"),
        ])),
    ])
    table = docs_to_table(docs)
    assert table.schema == DOCUMENT_SCHEMA
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
    assert [r["modality"] for r in rows] == ["text", "image", "mesh", "pair"]
    assert [r["label"] for r in rows] == ["t-shirt", "7", None, None]
    assert [r["score"] for r in rows] == [None, None, None, 1.0]
    assert [c["modality"] for c in rows[3]["chunks"]] == ["text", "image"]
    assert rows[3]["chunks"][0]["text"] == "pencil skirt" and rows[0]["chunks"] is None
    assert rows[0]["source_file"] is None and rows[0]["source_row"] is None
    # and on into our own documents and shard bytes
    assert docs_to_table(docs_from_bytes(docs_to_bytes(table_to_docs(table)))).equals(table)


def test_infer_modality_from_uri():
    assert infer_modality(FinetunerDoc(uri="a/b.JPEG")) == "image"
    assert infer_modality(FinetunerDoc(uri="a/b.glb")) == "mesh"
    assert infer_modality(FinetunerDoc(uri="a/b.csv")) == "text"
    assert infer_modality(FinetunerDoc()) == "text"


def test_tensor_must_be_a_point_cloud():
    doc = TrainingDoc(id="x", modality="image", tensor=np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        docs_to_table([doc])
