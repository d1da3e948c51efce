"""The fast `.docs` shard writer gives exactly docarray's own bytes, and docarray reads them back."""
import numpy as np
import pyarrow as pa

from schemas.docarray_docs import docs_from_bytes, docs_to_bytes, docs_to_table, table_to_docs
from transforms.write.docarray import table_to_shard_bytes
from schemas.documents import DOCUMENT_SCHEMA

BASE = dict(id="a", label=None, score=None, modality="text", text=None, uri=None, blob=None, mime_type=None,
            width=None, height=None, point_cloud=None, chunks=None, source_file=None, source_row=None)


def chunk(modality="text", **fields):
    row = {k: None for k in ("text", "uri", "blob", "mime_type", "width", "height", "point_cloud")}
    return dict(row, modality=modality, **fields)


def table():
    cloud = np.random.default_rng(0).random((2048, 3), dtype=np.float32).tolist()
    rows = [
        dict(BASE, id="1", label="greeting-english", text="Hello!", source_file="a.csv", source_row=1),
        dict(BASE, id="2", modality="image", uri="x.jpg", blob=b"\xff\xd8", mime_type="image/jpeg", width=3, height=4),
        dict(BASE, id="3", modality="mesh", uri="m.off", point_cloud=cloud, label="desk"),
        dict(BASE, id="4", modality="pair", score=0.9,
             chunks=[chunk(text="the weather is nice"), chunk("image", uri="u.png", blob=b"png", width=2)]),
        dict(BASE, id="5", modality="pair", score=0.0, label="", chunks=[]),
        dict(BASE, id="6", text="", blob=b"", width=0),
    ]
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)


def test_same_bytes_as_docarray():
    t = table()
    assert table_to_shard_bytes(t) == docs_to_bytes(table_to_docs(t))


def test_docarray_reads_the_shard_back():
    t = table()
    assert docs_to_table(docs_from_bytes(table_to_shard_bytes(t))).equals(t)
