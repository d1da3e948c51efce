"""Group stage: candidate documents -> each write bucket's finished documents (ids given, repeats removed).

The one shuffle goes through the staging folder, so no runner holds the dataset in memory: each worker
cuts its candidate batches by `_key % buckets` and spills the parts as Arrow IPC files
(`spill/bNNNNN/<uuid>.arrow`); only (bucket, path) pairs are grouped. A bucket's step then reads its
files, sorts by key, numbers equal documents by occurrence (k = 0, 1, ...), drops repeats where the layout
removes duplicates, and gives ids (the hex key, plus `-k` for k > 0). Emits (bucket, Table of
DOCUMENT_SCHEMA) per bucket, for the write stage.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import uuid
from typing import Iterator, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa

from schemas.documents import DOCUMENT_SCHEMA, KEY
from transforms.document_keys import hex_ids, repeats, sort_order
from transforms.stage import COUNTS, MAIN, Output, StageOutput, apply_step, count
from transforms.storage import join_url, read_arrow, write_arrow

STAGE = "group"


def split_by_bucket(batch: pa.RecordBatch, keys: np.ndarray, buckets: int,
                    keep: Optional[np.ndarray] = None) -> Iterator[tuple]:
    """A batch and its (n,) uint64 keys -> (bucket, sub-batch) for every bucket present, rows in batch order;
    only the rows where the (n,) bool `keep` is True, when given. One take, then zero-copy slices."""
    rows = np.flatnonzero(keep) if keep is not None else np.arange(len(keys))
    bucket_of = (keys[rows] % np.uint64(buckets)).astype(np.int64)
    order = np.argsort(bucket_of, kind="stable")
    sorted_buckets = bucket_of[order]
    taken = batch.take(pa.array(rows[order]))
    starts = np.flatnonzero(np.r_[True, sorted_buckets[1:] != sorted_buckets[:-1]]) if len(order) else order
    for start, end in zip(starts, np.r_[starts[1:], len(order)]):
        yield int(sorted_buckets[start]), taken.slice(start, end - start)


def finish_documents(table: pa.Table, remove_duplicates: bool) -> tuple[pa.Table, int]:
    """Candidates of one bucket -> (documents of DOCUMENT_SCHEMA sorted by id, duplicates removed).

    Ids are the hex key, plus `-k` for the k-th later document with the same key (kept repeats)."""
    order = sort_order(table)
    removed = 0
    if remove_duplicates:
        repeat = repeats(table, order)
        order, removed = order[~repeat[order]], int(repeat.sum())
    table = table.take(pa.array(order))  # one pass over the strings: sort and drop together
    keys = table.column(KEY).to_numpy()
    ids = hex_ids(keys)
    again = np.flatnonzero(np.r_[False, keys[1:] == keys[:-1]]) if keys.size else keys
    if again.size:
        run_start = np.maximum.accumulate(np.where(np.r_[True, keys[1:] != keys[:-1]], np.arange(keys.size), 0))
        suffixed = ids.to_pylist()
        for i in again.tolist():
            suffixed[i] += f"-{i - run_start[i]}"
        ids = pa.array(suffixed, type=pa.string())
    table = table.drop_columns([KEY]).add_column(0, "id", ids)
    return table.cast(DOCUMENT_SCHEMA), removed


class _SpillFn(beam.DoFn):
    """A candidate batch -> Output(MAIN, (bucket, spill file path)) per bucket present; Output(COUNTS, ...).

    Spills at once, per batch: some runners (Beam 2.77's DaskRunner) drop what finish_bundle emits."""

    def __init__(self, staging: str, buckets: int, remove_duplicates: bool):
        self._staging, self._buckets, self._remove = staging, buckets, remove_duplicates

    def process(self, batch: pa.RecordBatch) -> Iterator[Output]:
        # A repeat follows its first copy in key order, so it is in the same bucket: drop repeats before cutting.
        repeat = repeats(batch, sort_order(batch)) if self._remove else np.zeros(batch.num_rows, dtype=bool)
        removed = int(repeat.sum())
        for bucket, part in split_by_bucket(batch, batch.column(KEY).to_numpy(), self._buckets, ~repeat):
            path = join_url(self._staging, "spill", f"b{bucket:05d}", f"{uuid.uuid4().hex}.arrow")
            write_arrow(pa.Table.from_batches([part]), path)
            yield Output(MAIN, (bucket, path))
        if removed:
            yield Output(COUNTS, count(STAGE, duplicates_removed=removed))


class _FinishBucketFn(beam.DoFn):
    """(bucket, [spill paths]) -> Output(MAIN, (bucket, documents Table)); Output(COUNTS, duplicates_removed)."""

    def __init__(self, remove_duplicates: bool):
        self._remove = remove_duplicates

    def process(self, element) -> Iterator[Output]:
        bucket, paths = element
        table, removed = finish_documents(pa.concat_tables([read_arrow(p) for p in sorted(paths)]), self._remove)
        yield Output(MAIN, (bucket, table))
        if removed:
            yield Output(COUNTS, count(STAGE, duplicates_removed=removed))


class GroupDocuments(beam.PTransform):
    """Stage: main = candidate RecordBatches -> main = (bucket, Table of DOCUMENT_SCHEMA sorted by id) pairs."""

    def __init__(self, staging: str, buckets: int, remove_duplicates: bool):
        super().__init__()
        self._staging, self._buckets, self._remove = staging, buckets, remove_duplicates

    def expand(self, flow: StageOutput) -> StageOutput:
        spilled = apply_step(flow, "SpillToBuckets", _SpillFn(self._staging, self._buckets, self._remove), None)
        grouped = spilled.advance(spilled.main | "GroupByBucket" >> beam.GroupByKey())
        return apply_step(grouped, "FinishBuckets", _FinishBucketFn(self._remove), None)
