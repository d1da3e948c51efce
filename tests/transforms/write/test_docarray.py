"""`.docs` shards: docarray's own bytes, uncompressed, opened by docarray's load_binary with its defaults;
shards of datasets published before (zlib over the same bytes) are still read."""
import zlib

import numpy as np
import pyarrow as pa
from docarray import DocList

from schemas.docarray_docs import TrainingDoc, docs_from_bytes, docs_to_bytes, docs_to_table, table_to_docs
from schemas.documents import DOCUMENT_SCHEMA
from support.finetuner_docs import FinetunerDoc
from transforms.read.read_docarray import parse_doclist
from transforms.write.docarray import DocArrayShards
from transforms.write.shard_writer import write_shard

BASE = dict(id="a", label=None, score=None, modality="text", text=None, uri=None, blob=None, mime_type=None,
            width=None, height=None, point_cloud=None, point_cloud_from=None, chunks=None, source_file=None,
            source_row=None)


def chunk(modality="text", **fields):
    row = {k: None for k in ("text", "uri", "blob", "mime_type", "width", "height", "point_cloud", "point_cloud_from")}
    return dict(row, modality=modality, **fields)


def table():
    cloud = np.random.default_rng(0).random((2048, 3), dtype=np.float32).tolist()
    rows = [
        dict(BASE, id="1", label="greeting-english", text="Hello!", source_file="a.csv", source_row=1),
        dict(BASE, id="2", modality="image", uri="x.jpg", blob=b"\xff\xd8", mime_type="image/jpeg", width=3, height=4),
        dict(BASE, id="3", modality="mesh", uri="m.off", point_cloud=cloud, point_cloud_from="surface", label="desk"),
        dict(BASE, id="4", modality="pair", score=0.9,
             chunks=[chunk(text="the weather is nice"), chunk("image", uri="u.png", blob=b"png", width=2)]),
        dict(BASE, id="5", modality="pair", score=0.0, label="", chunks=[]),
        dict(BASE, id="6", text="", blob=b"", width=0),
    ]
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)


def shard(tmp_path, t: pa.Table):
    """t written as a `.docs` shard -> its path."""
    path = tmp_path / "docarray" / "part-00000-of-00001.docs"
    write_shard(DocArrayShards, t, str(path))
    return path


def test_same_bytes_as_docarray_uncompressed(tmp_path):
    t = table()
    assert shard(tmp_path, t).read_bytes() == docs_to_bytes(table_to_docs(t))


def test_docarray_load_binary_opens_the_shard_with_its_defaults(tmp_path):
    t = table()
    path = shard(tmp_path, t)
    assert docs_to_table(DocList[TrainingDoc].load_binary(str(path))).equals(t)
    # a user's own Finetuner-shaped class: fields it does not declare are skipped
    docs = DocList[FinetunerDoc].load_binary(str(path))
    assert [d.id for d in docs] == ["1", "2", "3", "4", "5", "6"]
    assert docs[0].text == "Hello!" and docs[0].tags == {"finetuner_label": "greeting-english"}
    assert docs[1].uri == "x.jpg" and docs[4].tags == {"finetuner_label": "", "finetuner_score": 0.0}
    assert [c.text for c in docs[3].chunks] == ["the weather is nice", None]
    assert [c.modality for c in docs[3].chunks] == ["text", "image"]


def test_our_readers_read_new_and_old_shards(tmp_path):
    t = table()
    raw = shard(tmp_path, t).read_bytes()
    for data in (raw, zlib.compress(raw)):  # zlib: the shards of datasets published before
        assert docs_to_table(docs_from_bytes(data)).equals(t)
        assert [d.data["id"].text for d in parse_doclist(data).docs] == ["1", "2", "3", "4", "5", "6"]
