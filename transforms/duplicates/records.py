"""Rows of the duplicates table (`duplicates/*.parquet`, schemas.documents.DUPLICATE_SCHEMA): one per
document removed as a duplicate or clustered with near duplicates, saying which document was kept for it."""
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.documents import DUPLICATE_SCHEMA
from transforms.document_keys import hex_ids
from transforms.uris import redact_column

EXACT, NEAR = "exact", "near"


def duplicate_records(docs, rows: np.ndarray, kept_ids: pa.Array, kind: str, similarity: np.ndarray,
                      removed: np.ndarray, ids: Optional[pa.Array] = None, content: bool = True) -> pa.RecordBatch:
    """Candidate or document batch/table, (k,) row indices into it, (k,) ids kept for them, the kind,
    (k,) float similarities, (k,) bool removed, and (k,) their own ids (None: removed exact duplicates,
    which never got one) -> a RecordBatch of DUPLICATE_SCHEMA (uris and source files without credentials);
    without content, label and text stay null."""
    taken = ["modality", "uri", "source_file", "source_row"] + (["label", "text"] if content else [])
    picked = docs.select(taken).take(pa.array(rows, type=pa.int64()))
    k = len(rows)

    def column(name: str) -> pa.Array:
        if name not in taken:
            return pa.nulls(k, pa.string())
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
    return pa.RecordBatch.from_arrays([arrays[f.name] for f in DUPLICATE_SCHEMA], schema=DUPLICATE_SCHEMA)


def exact_duplicates(docs, removed_rows: np.ndarray, keys: np.ndarray) -> pa.RecordBatch:
    """Rows removed as exact repeats of a document with the same (n,) uint64 key -> their duplicate records,
    without label and text (they are the kept document's); the document kept for each is named by its
    key's id (a removed repeat's twin keeps the bare key)."""
    k = len(removed_rows)
    return duplicate_records(docs, removed_rows, hex_ids(keys[removed_rows]), EXACT, np.ones(k),
                             np.ones(k, dtype=bool), content=False)


REPEATING = ("kind", "modality", "source_file")  # few distinct values: dictionary-encoded to cross a shuffle


def compact(records: pa.RecordBatch) -> pa.RecordBatch:
    """Duplicate records -> the same with their repeating string columns dictionary-encoded (a tenth of the
    bytes for a run's exact repeats, which all name one or a few source files); `expanded` undoes it."""
    columns = [pc.dictionary_encode(records.column(f.name)) if f.name in REPEATING else records.column(f.name)
               for f in records.schema]
    return pa.RecordBatch.from_arrays(columns, names=records.schema.names)


def expanded(batches: list) -> pa.Table:
    """Compact record batches (of one or several stages) -> one table of DUPLICATE_SCHEMA."""
    return pa.Table.from_batches([b.cast(DUPLICATE_SCHEMA) for b in batches], schema=DUPLICATE_SCHEMA)
