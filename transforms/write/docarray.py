"""The docarray format: `docarray/*.docs` shards, DocList[TrainingDoc] in docarray's protobuf-array protocol.

Arrow rows of DOCUMENT_SCHEMA become the same protobuf messages docarray's `DocList[TrainingDoc].to_protobuf()`
builds (one DocProto per document, its fields in a map of NodeProtos), without building docarray objects,
about ten times faster; `schemas.docarray_docs.docs_from_bytes` reads them back with docarray itself. A test
keeps the two byte-identical. A DocListProto is a repeated field, so the messages of successive batches,
serialized one after the other, are the message of the whole shard: a shard is written batch by batch.
"""
import zlib
from typing import Union

import numpy as np
import pyarrow as pa
from docarray.proto import DocListProto, DocProto

from schemas.docarray_docs import LABEL_TAG, SCORE_TAG
from transforms.write.shard_writer import ShardWriter

_SCALARS = ("text", "uri", "mime_type", "width", "height")


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


def doclist_message(batch: Union[pa.RecordBatch, pa.Table]) -> bytes:
    """DOCUMENT_SCHEMA rows -> the serialized DocListProto of their documents (uncompressed)."""
    message = DocListProto()
    for row in batch.to_pylist():
        _fill_document(message.docs.add(), row)
    return message.SerializeToString(deterministic=True)


def table_to_shard_bytes(table: pa.Table) -> bytes:
    """DOCUMENT_SCHEMA rows -> zlib-compressed DocList protobuf, the `.docs` shard format."""
    return zlib.compress(doclist_message(table))


class DocArrayShards(ShardWriter):
    """Documents as a zlib-compressed DocList protobuf (the `.docs` shard format), streamed batch by batch."""

    name = "docarray"
    folder = "docarray"
    suffix = ".docs"

    def __init__(self, url: str):
        super().__init__(url)
        self._handle = self._open()
        self._compress = zlib.compressobj()
        self._size = 0

    def _write(self, batch: Union[pa.RecordBatch, pa.Table]) -> None:
        self._put(self._compress.compress(doclist_message(batch)))

    def _close(self) -> int:
        self._put(self._compress.flush())
        self._handle.close()
        return self._size

    def _put(self, data: bytes) -> None:
        self._handle.write(data)
        self._size += len(data)
