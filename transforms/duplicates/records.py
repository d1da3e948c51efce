"""Rows of the duplicates table (`duplicates/*.parquet`, schemas.documents.DUPLICATE_SCHEMA): one per
document removed as a duplicate or clustered with near duplicates, saying which document was kept for it."""
from typing import Optional

import numpy as np
import pyarrow as pa

from schemas.documents import DUPLICATE_SCHEMA
from transforms.document_keys import hex_ids
from transforms.uris import redact_column

EXACT, NEAR = "exact", "near"


def duplicate_records(docs, rows: np.ndarray, kept_ids: pa.Array, kind: str, similarity: np.ndarray,
                      removed: np.ndarray, ids: Optional[pa.Array] = None) -> pa.RecordBatch:
    """Candidate or document batch/table, (k,) row indices into it, (k,) ids kept for them, the kind,
    (k,) float similarities, (k,) bool removed, and (k,) their own ids (None: removed exact duplicates,
    which never got one) -> a RecordBatch of DUPLICATE_SCHEMA (uris and source files without credentials)."""
    picked = docs.take(pa.array(rows, type=pa.int64()))
    k = len(rows)

    def column(name: str) -> pa.Array:
        values = picked.column(name)
        return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values

    arrays = {
        "id": ids if ids is not None else pa.nulls(k, pa.string()),
        "kept_id": kept_ids,
        "kind": pa.array([kind] * k, type=pa.string()),
        "similarity": pa.array(np.asarray(similarity, dtype=np.float64)),
        "removed": pa.array(np.asarray(removed, dtype=bool)),
        "modality": column("modality"),
        "label": column("label"),
        "text": column("text"),
        "uri": redact_column(column("uri")),
        "source_file": redact_column(column("source_file")),
        "source_row": column("source_row"),
    }
    return pa.RecordBatch.from_arrays([arrays[f.name].cast(f.type) for f in DUPLICATE_SCHEMA], schema=DUPLICATE_SCHEMA)


def exact_duplicates(docs, removed_rows: np.ndarray, keys: np.ndarray) -> pa.RecordBatch:
    """Rows removed as exact repeats of a document with the same (n,) uint64 key -> their duplicate records;
    the document kept for each is named by its key's id (a removed repeat's twin keeps the bare key)."""
    k = len(removed_rows)
    return duplicate_records(docs, removed_rows, hex_ids(keys[removed_rows]), EXACT, np.ones(k), np.ones(k, dtype=bool))
