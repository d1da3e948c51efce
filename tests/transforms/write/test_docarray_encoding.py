"""The bulk `.docs` encoder gives, byte for byte, the DocListProto of a message built per document.

The oracle below is the writer's former encoder: one DocProto per document filled field by field, serialized
with deterministic map order (what docarray's own DocList[TrainingDoc].to_protobuf() holds).
"""
import numpy as np
import pyarrow as pa
import pytest
from docarray.proto import DocListProto, DocProto

from schemas.docarray_docs import LABEL_TAG, SCORE_TAG
from schemas.documents import DOCUMENT_SCHEMA
from transforms.write.docarray import DocArrayShards, encode_doclist

_SCALARS = ("text", "uri", "mime_type", "width", "height", "point_cloud_from")


def _set_scalar(node, value) -> None:
    if value is None:
        node.SetInParent()
    elif isinstance(value, str):
        node.text = value
    elif isinstance(value, bool):
        node.boolean = value
    elif isinstance(value, int):
        node.integer = value
    elif isinstance(value, float):
        node.float = value
    elif isinstance(value, bytes):
        node.blob = value
    else:
        raise TypeError(f"no protobuf field for {type(value).__name__}")


def _set_cloud(node, points) -> None:
    if points is None:
        node.SetInParent()
        return
    array = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    node.ndarray.dense.buffer = array.tobytes()
    node.ndarray.dense.shape.extend(array.shape)
    node.ndarray.dense.dtype = array.dtype.str
    node.type = "ndarray"


def _fill_content(doc: DocProto, row: dict, doc_id: str) -> None:
    data = doc.data
    data["id"].text = doc_id
    data["id"].type = "id"
    data["modality"].text = row["modality"]
    for name in _SCALARS:
        _set_scalar(data[name], row[name])
    _set_scalar(data["blob"], row["blob"])
    _set_cloud(data["tensor"], row["point_cloud"])


def _fill_document(doc: DocProto, row: dict) -> None:
    _fill_content(doc, row, row["id"])
    tags = doc.data["tags"].dict
    tags.SetInParent()
    if row["label"] is not None:
        tags.data[LABEL_TAG].text = row["label"]
    if row["score"] is not None:
        tags.data[SCORE_TAG].float = row["score"]
    chunks = doc.data["chunks"]
    if row["chunks"] is None:
        chunks.SetInParent()
    else:
        chunks.doc_array.SetInParent()
        for i, chunk in enumerate(row["chunks"]):
            _fill_content(chunks.doc_array.docs.add(), chunk, f"{row['id']}/{i}")
    _set_scalar(doc.data["source_file"], row["source_file"])
    _set_scalar(doc.data["source_row"], row["source_row"])
    _set_scalar(doc.data["split"], row["split"])


def oracle(table: pa.Table) -> bytes:
    """DOCUMENT_SCHEMA rows -> DocListProto built per document, serialized deterministically."""
    message = DocListProto()
    for row in table.to_pylist():
        _fill_document(message.docs.add(), row)
    return message.SerializeToString(deterministic=True)


def encoded(table, rows_per_piece: int = 65_536) -> bytes:
    return b"".join(piece.to_pybytes() for piece in encode_doclist(table, rows_per_piece))


def doc(**fields) -> dict:
    """Only the given fields; the rest of DOCUMENT_SCHEMA is null."""
    return {name: fields.get(name) for name in DOCUMENT_SCHEMA.names}


def chunk(**fields) -> dict:
    names = ["modality", "text", "uri", "blob", "mime_type", "width", "height", "point_cloud", "point_cloud_from"]
    return {name: fields.get(name) for name in names}


CLOUD = np.random.default_rng(0).standard_normal((300, 3)).astype(np.float32).tolist()
LONG = "x" * 200_000  # lengths of three varint bytes
CASES = {
    "text": [doc(id="t1", modality="text", text="pencil skirt slim fit", source_file="a.csv", source_row=3,
                 split="train"),
             doc(id="t2", modality="text", text=None, source_file=None, source_row=None)],
    "unicode_and_empty": [doc(id="ü/中", modality="text", text="naïve café ☕ 😀", source_file="dir/ß.csv"),
                          doc(id="", modality="", text="", uri="", mime_type="", source_file="", source_row=0),
                          doc(id="long", modality="text", text=LONG, label=LONG)],
    "labeled": [doc(id="l1", modality="text", text="shirt", label="t-shirt"),
                doc(id="l2", modality="text", text="skirt", label=""),
                doc(id="l3", modality="text", text="none", label=None)],
    "scored": [doc(id="s1", modality="text", text="a", score=0.9),
               doc(id="s2", modality="text", text="b", score=0.0, label="x"),
               doc(id="s3", modality="text", text="c", score=-1e300),
               doc(id="s4", modality="text", text="d", score=float("nan")),
               doc(id="s5", modality="text", text="e", score=None)],
    "clip_two_chunks": [
        doc(id="p1", modality="pair", score=1.0, source_file="pairs.csv", source_row=7, chunks=[
            chunk(modality="text", text="the weather is nice"),
            chunk(modality="image", uri="https://x/skirt-1.png", blob=b"img", mime_type="image/png", width=2,
                  height=3)]),
        doc(id="p2", modality="pair", chunks=[]),
        doc(id="p3", modality="pair", chunks=None),
        doc(id="p4", modality="pair", label="q", chunks=[chunk(modality="text", text=""), chunk(modality="text")]),
    ],
    "image_blob": [doc(id="i1", modality="image", uri="data/shirt.png", blob=b"\x89PNG\x00\x01" * 50,
                       mime_type="image/png", width=224, height=160, label="t-shirt"),
                   doc(id="i2", modality="image", uri="u.jpg", blob=b"", width=0, height=-5),
                   doc(id="i3", modality="image", uri="v.jpg", blob=None, width=2**31 - 1, height=-(2**31))],
    "point_cloud": [doc(id="m1", modality="mesh", uri="data/desk.off", point_cloud=CLOUD, label="desk",
                        point_cloud_from="surface"),
                    doc(id="m2", modality="mesh", point_cloud=[], point_cloud_from="points"),
                    doc(id="m3", modality="mesh", point_cloud=None),
                    doc(id="m4", modality="pair", chunks=[
                        chunk(modality="mesh", point_cloud=CLOUD[:5], point_cloud_from="points"),
                        chunk(modality="mesh", point_cloud=[])])],
}


def table(rows) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)


@pytest.mark.parametrize("name", list(CASES))
def test_byte_identical_to_the_per_document_message(name):
    t = table(CASES[name])
    assert encoded(t) == oracle(t)
    for i in range(t.num_rows):  # and each row alone (sliced arrays, one-row columns without nulls)
        assert encoded(t.slice(i, 1)) == oracle(t.slice(i, 1))


ALL_ROWS = [row for case in CASES.values() for row in case]


@pytest.mark.parametrize("rows_per_piece", [1, 3, 1000])
def test_pieces_are_one_message(rows_per_piece):
    """Mixed rows, a table of several Arrow chunks, cut in pieces: still one message, the same bytes."""
    t = pa.concat_tables([table(ALL_ROWS[:7]), table(ALL_ROWS[7:])])
    assert encoded(t, rows_per_piece) == oracle(t)


def test_shard_written_batch_by_batch(tmp_path):
    t = table(ALL_ROWS)
    shard = DocArrayShards(str(tmp_path / "shard.docs"))
    for batch in t.to_batches(max_chunksize=4):
        shard.write(batch)
    record = shard.close()
    data = (tmp_path / "shard.docs").read_bytes()
    assert data == oracle(t) and record.bytes == len(data) and record.rows == len(ALL_ROWS)


def test_no_rows():
    assert encoded(table([])) == oracle(table([])) == b""


def test_source_row_beyond_int32_is_refused_like_protobuf_does():
    t = table([doc(id="x", modality="text", source_row=2**31)])
    with pytest.raises(ValueError):
        oracle(t)
    with pytest.raises(ValueError):
        encoded(t)
