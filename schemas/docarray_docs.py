"""docarray (v2, 0.40) document classes for training documents, and their conversions.

Arrow rows of DOCUMENT_SCHEMA <-> DocList[TrainingDoc] <-> bytes of a `.docs` shard.
Labels and scores live in tags, as Finetuner expects: {'finetuner_label': ..., 'finetuner_score': ...}.
"""
import zlib
from typing import Any, Dict, Iterable, Optional

import numpy as np
import pyarrow as pa
from docarray import BaseDoc, DocList
from docarray.typing import NdArray
from pydantic import Field

from schemas.documents import DOCUMENT_SCHEMA, LABEL_TAG, SCORE_TAG
from schemas.modalities import PAIR, modality_of_extension, uri_extension


# Media fields shared by a document and a chunk (Arrow's point_cloud is the docs' tensor).
_CONTENT = ("text", "uri", "blob", "mime_type", "width", "height", "point_cloud_from")

# On-disk `.docs` shard: the DocList protobuf-array, uncompressed, so that docarray's
# DocList[...].load_binary(path) opens it with its defaults. Shards written before were zlib over it
# (a zlib stream starts with 0x78, a DocListProto with 0x0a): both are read.
SHARD_PROTOCOL = "protobuf-array"
_ZLIB_HEADER = b"\x78"


class _Content(BaseDoc):
    """The content fields a document and a chunk share."""

    modality: str
    text: Optional[str] = None
    uri: Optional[str] = None
    blob: Optional[bytes] = None
    mime_type: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None
    tensor: Optional[NdArray] = None  # point cloud, float32 (N, 3)
    point_cloud_from: Optional[str] = None  # "surface" or "points": what the tensor was sampled from


class ChunkDoc(_Content):
    """One side of a two-chunk ('pair') document."""


class TrainingDoc(_Content):
    """One training document; tags hold 'finetuner_label' and/or 'finetuner_score' when known."""

    tags: Dict[str, Any] = Field(default_factory=dict)
    chunks: Optional[DocList[ChunkDoc]] = None
    source_file: Optional[str] = None
    source_row: Optional[int] = None
    split: Optional[str] = None


def _cloud_to_tensor(points: Optional[list]) -> Optional[np.ndarray]:
    """Arrow point_cloud (list of [x, y, z]) or null -> float32 (N, 3) array or None."""
    if points is None:
        return None
    return np.asarray(points, dtype=np.float32).reshape(-1, 3)


def _tensor_to_cloud(tensor: Any) -> Optional[list]:
    """A point-cloud tensor (anything array-like of shape (N, 3)) or None -> list of [x, y, z] or None."""
    if tensor is None:
        return None
    points = np.asarray(tensor, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"tensor must be an (N, 3) point cloud, got shape {points.shape}")
    return points.tolist()


def _content_from_row(row: dict) -> dict:
    """Arrow content fields of a row or chunk -> doc fields (point_cloud becomes tensor)."""
    fields = {name: row[name] for name in _CONTENT}
    fields["tensor"] = _cloud_to_tensor(row["point_cloud"])
    return fields


def table_to_docs(table: pa.Table) -> DocList[TrainingDoc]:
    """Arrow table of DOCUMENT_SCHEMA rows -> DocList[TrainingDoc] (chunk ids are '<doc id>/<index>')."""
    docs = []
    for row in table.to_pylist():
        tags: Dict[str, Any] = {}
        if row["label"] is not None:
            tags[LABEL_TAG] = row["label"]
        if row["score"] is not None:
            tags[SCORE_TAG] = row["score"]
        chunks = None
        if row["chunks"] is not None:
            chunks = DocList[ChunkDoc](
                ChunkDoc(id=f"{row['id']}/{i}", modality=c["modality"], **_content_from_row(c))
                for i, c in enumerate(row["chunks"])
            )
        docs.append(
            TrainingDoc(
                id=row["id"],
                modality=row["modality"],
                tags=tags,
                chunks=chunks,
                source_file=row["source_file"],
                source_row=row["source_row"],
                split=row["split"],
                **_content_from_row(row),
            )
        )
    return DocList[TrainingDoc](docs)


def infer_modality(doc: Any) -> str:
    """A doc without a modality -> 'pair' if it has chunks, 'text' if it has text, else from the uri's
    extension, else 'mesh' for a point-cloud tensor and 'image' for a blob (what Finetuner's
    load_uri_to_point_cloud_tensor / load_uri_to_blob leave), else 'text'."""
    if getattr(doc, "chunks", None):
        return PAIR
    if getattr(doc, "text", None):
        return "text"
    uri = getattr(doc, "uri", None)
    if uri:
        modality = modality_of_extension(uri_extension(str(uri)))
        if modality:
            return modality
    if getattr(doc, "tensor", None) is not None:
        return "mesh"
    if getattr(doc, "blob", None):
        return "image"
    return "text"


def _optional(value: Any, kind: type) -> Any:
    """A field value or None -> kind(value) or None."""
    return None if value is None else kind(value)


def _content_to_row(doc: Any) -> dict:
    """Any doc's content fields (missing ones are null) -> Arrow content fields."""
    kinds = {"text": str, "uri": str, "blob": bytes, "mime_type": str, "width": int, "height": int,
             "point_cloud_from": str}
    row = {name: _optional(getattr(doc, name, None), kinds[name]) for name in _CONTENT}
    row["point_cloud"] = _tensor_to_cloud(getattr(doc, "tensor", None))
    return row


def _modality(doc: Any) -> str:
    """A doc's own modality, or the inferred one when it has none."""
    return getattr(doc, "modality", None) or infer_modality(doc)


def docs_to_table(docs: Iterable[BaseDoc]) -> pa.Table:
    """TrainingDocs, or Finetuner-shaped docs (text/uri/tags/chunks, fields may be missing) -> DOCUMENT_SCHEMA table."""
    rows = []
    for doc in docs:
        tags = getattr(doc, "tags", None) or {}
        chunks = getattr(doc, "chunks", None)
        if chunks is not None and not chunks and not isinstance(doc, TrainingDoc):
            chunks = None  # a foreign doc's empty default chunks means "no chunks"
        rows.append(
            {
                "id": str(doc.id),
                "label": _optional(tags.get(LABEL_TAG), str),
                "score": _optional(tags.get(SCORE_TAG), float),
                "modality": _modality(doc),
                **_content_to_row(doc),
                "chunks": None
                if chunks is None
                else [{"modality": _modality(c), **_content_to_row(c)} for c in chunks],
                "source_file": _optional(getattr(doc, "source_file", None), str),
                "source_row": _optional(getattr(doc, "source_row", None), int),
                "split": _optional(getattr(doc, "split", None), str),
            }
        )
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)


def docs_to_bytes(docs: Iterable[TrainingDoc]) -> bytes:
    """TrainingDocs -> bytes of a `.docs` shard, the same bytes for the same docs in any process.

    docarray's DocList protobuf, serialized with deterministic map order: docarray keeps every doc's
    fields in a protobuf map, and its own to_bytes orders them differently per process.
    """
    if not isinstance(docs, DocList) or docs.doc_type is not TrainingDoc:
        docs = DocList[TrainingDoc](docs)
    return docs.to_protobuf().SerializeToString(deterministic=True)


def docs_from_bytes(data: bytes) -> DocList[TrainingDoc]:
    """Bytes of a `.docs` shard, raw or zlib-compressed (older shards) -> DocList[TrainingDoc]."""
    if data[:1] == _ZLIB_HEADER:
        data = zlib.decompress(data)
    return DocList[TrainingDoc].from_bytes(data, protocol=SHARD_PROTOCOL)
