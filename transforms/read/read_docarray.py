"""Read docarray DocList files (`.docs`) as candidate documents, next to (or instead of) CSV files.

Accepts docarray's protobuf-array format, what `DocList.save_binary` writes by default and what our
docarray output writes, raw or compressed with zlib, gzip or bz2. Documents are read from the protobuf
messages directly, so any document class works: `text`, `uri`, `blob`, `tensor` (an (N, 3) point cloud) with
`point_cloud_from` (what it was sampled from, kept as it says; null without a tensor), `modality`, `tags` with
`finetuner_label` / `finetuner_score`, and `chunks` for two-chunk documents, as on Finetuner's "Prepare
Training Data" page. A file that cannot be read is one dead letter; a document with no content is a dead
letter naming its position in the file.
"""
import bz2
import gzip
import posixpath
import zlib
from typing import Iterator

import apache_beam as beam
import fsspec
import numpy as np
import pyarrow as pa
from docarray.proto import DocListProto

from schemas.docarray_docs import infer_modality
from schemas.documents import CANDIDATE_SCHEMA, KEY, LABEL_TAG, SCORE_TAG, DeadLetter
from schemas.modalities import PAIR
from transforms.document_keys import document_keys
from transforms.uris import resolve
from transforms.stage import OneStepStage, count, step_outputs

STAGE = "read"


def parse_doclist(data: bytes) -> DocListProto:
    """File bytes -> DocListProto; ValueError when no known compression and format fits."""
    for decompress in (zlib.decompress, gzip.decompress, bz2.decompress, lambda b: b):
        try:
            raw = decompress(data)
        except (zlib.error, OSError, ValueError, EOFError):
            continue
        message = DocListProto()
        try:
            message.ParseFromString(raw)
        except Exception:  # protobuf's DecodeError and friends
            continue
        if message.docs or not raw:
            return message
    raise ValueError("not a docarray DocList in protobuf-array format (raw, zlib, gzip or bz2)")


def _value(node):
    """A NodeProto -> its Python value (None when empty)."""
    kind = node.WhichOneof("content")
    if kind in ("text", "integer", "float", "boolean", "blob"):
        return getattr(node, kind)
    if kind == "ndarray":
        dense = node.ndarray.dense
        return np.frombuffer(dense.buffer, dtype=dense.dtype).reshape(tuple(dense.shape))
    if kind == "dict":
        return {k: _value(v) for k, v in node.dict.data.items()}
    if kind == "doc_array":
        return list(node.doc_array.docs)
    return None


class _Fields:
    """Attribute access to a DocProto's fields, for infer_modality."""

    def __init__(self, doc):
        self.values = {k: _value(v) for k, v in doc.data.items()}

    def __getattr__(self, name):
        return self.__dict__["values"].get(name)


def _content(doc) -> dict:
    fields = _Fields(doc)
    tensor = fields.tensor
    cloud = tensor.astype(np.float32).tolist() if isinstance(tensor, np.ndarray) and tensor.ndim == 2 and tensor.shape[1] == 3 else None
    content = {"text": fields.text, "uri": fields.uri, "blob": fields.blob, "mime_type": fields.mime_type,
               "width": fields.width, "height": fields.height, "point_cloud": cloud,
               "point_cloud_from": None if cloud is None else fields.point_cloud_from}
    content = {k: v if v is None or k in ("blob", "point_cloud", "width", "height") else str(v) for k, v in content.items()}
    return dict(content, modality=str(fields.modality or infer_modality(fields)), _fields=fields)


def _resolve(uri, base: str):
    """A relative media path is relative to the .docs file's folder, as CSV paths are to the CSV's."""
    return None if uri is None else resolve(uri, base)


class BadScore(ValueError):
    """A finetuner_score that is not a number in [0, 1]."""


def _score(value) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise BadScore(f"finetuner_score {value!r} is not a number") from None
    if not 0 <= score <= 1:  # NaN fails too
        raise BadScore(f"finetuner_score {value!r} is outside [0, 1]")
    return score


def doc_to_row(doc, url: str, position: int) -> dict:
    """A DocProto -> a candidate row (without `_key`); BadScore for a score outside [0, 1], ValueError
    when it holds no content."""
    row = _content(doc)
    row["uri"] = _resolve(row["uri"], posixpath.dirname(url))
    fields = row.pop("_fields")
    tags = fields.tags or {}
    chunks = fields.chunks
    row["chunks"] = None
    if chunks:
        row["chunks"] = []
        for chunk in chunks:
            chunk_row = _content(chunk)
            chunk_row.pop("_fields")
            chunk_row["uri"] = _resolve(chunk_row["uri"], posixpath.dirname(url))
            row["chunks"].append(chunk_row)
        row["modality"] = PAIR
    elif not any(row[k] is not None for k in ("text", "uri", "blob", "point_cloud")):
        raise ValueError("the document has no text, uri, blob, tensor or chunks")
    label, score = tags.get(LABEL_TAG), tags.get(SCORE_TAG)
    row["label"] = None if label is None else str(label)
    row["score"] = None if score is None else _score(score)
    row.update(source_file=url, source_row=position)
    return row


def read_doclist(url: str, data: bytes, batch_rows: int) -> tuple[list[pa.RecordBatch], list[DeadLetter], int]:
    """A .docs file's bytes -> (candidate batches, dead letters, documents read)."""
    try:
        message = parse_doclist(data)
    except ValueError as exc:
        return [], [DeadLetter(url, None, STAGE, "docarray_unreadable", f"{url} is {exc}")], 1
    rows, dead = [], []
    for position, doc in enumerate(message.docs, start=1):
        try:
            rows.append(doc_to_row(doc, url, position))
        except ValueError as exc:
            reason_class = "score" if isinstance(exc, BadScore) else "empty_document"
            dead.append(DeadLetter(url, position, STAGE, reason_class, f"document {position}: {exc}"))
    batches = []
    for start in range(0, len(rows), batch_rows):
        batch = pa.RecordBatch.from_pylist(rows[start:start + batch_rows], schema=CANDIDATE_SCHEMA)
        index = batch.schema.get_field_index(KEY)
        batches.append(batch.set_column(index, KEY, pa.array(document_keys(batch), type=pa.uint64())))
    return batches, dead, len(message.docs)


class _ReadDocListFn(beam.DoFn):
    def __init__(self, batch_rows: int):
        self._batch_rows = batch_rows

    def process(self, url: str) -> Iterator:
        with fsspec.open(url, "rb") as handle:
            data = handle.read()
        batches, dead, read = read_doclist(url, data, self._batch_rows)
        documented = sum(b.num_rows for b in batches)
        yield from step_outputs(batches, dead, count(
            STAGE, dead=dead, rows_read=read if read else len(dead), rows_documented=documented,
            candidate_documents=documented, files_read=1, bytes_read=len(data)))


class ReadDocLists(OneStepStage):
    """Stage: main = urls of .docs files -> main = candidate RecordBatches (CANDIDATE_SCHEMA)."""

    def __init__(self, batch_rows: int):
        super().__init__(_ReadDocListFn(batch_rows))
