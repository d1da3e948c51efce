"""Write stage: candidate documents and dead letters -> sharded files in the run's staging folder.

The one shuffle goes through the staging folder, so no runner holds the dataset in memory: each worker
cuts its candidate batches by `_key % buckets`, buffers them per bucket and spills them as Arrow IPC files
(`spill/bNNNNN/<uuid>.arrow`); only (bucket, path) pairs are grouped. A bucket's writer then reads its
files, sorts by key, numbers equal documents by occurrence (k = 0, 1, ...), drops repeats where the layout
removes duplicates, gives ids (the hex key, plus `-k` for k > 0) and writes shards of at most `shard_rows`
rows and about `shard_bytes` bytes. Emits one descriptor dict per file written.
"""
import math
import uuid
from typing import Iterator, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.docarray_proto import table_to_shard_bytes
from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA
from schemas.options import OutputOptions
from transforms.counting import count
from transforms.document_keys import KEY, hex_ids, repeats, sort_order
from transforms.outputs import COUNTS, MAIN, Output, SplitOutputs
from transforms.storage import join_url, read_arrow, write_arrow, write_bytes, write_parquet

STAGE = "write"


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


def shard_slices(num_rows: int, num_bytes: int, options: OutputOptions) -> list[tuple[int, int]]:
    """(offset, length) of each shard so that none exceeds shard_rows rows or (about) shard_bytes bytes."""
    shards = max(1, math.ceil(num_rows / options.shard_rows), math.ceil(num_bytes / options.shard_bytes))
    bounds = np.linspace(0, num_rows, shards + 1).round().astype(int)
    return [(int(a), int(b - a)) for a, b in zip(bounds, bounds[1:]) if b > a]


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


class _WriteBucketFn(beam.DoFn):
    """(bucket, [spill paths]) -> Output(MAIN, descriptor) per file written; Output(COUNTS, ...)."""

    def __init__(self, staging: str, options: OutputOptions, remove_duplicates: bool):
        self._staging, self._options, self._remove = staging, options, remove_duplicates

    def process(self, element) -> Iterator:
        bucket, paths = element
        table = pa.concat_tables([read_arrow(p) for p in sorted(paths)])
        table, removed = finish_documents(table, self._remove)
        for part, (offset, length) in enumerate(shard_slices(table.num_rows, table.nbytes, self._options)):
            shard = table.slice(offset, length)
            name = f"b{bucket:05d}-{part:04d}"
            if self._options.writes_parquet:
                path = join_url(self._staging, "documents", name + ".parquet")
                yield Output(MAIN, dict(kind="documents", bucket=bucket, part=part, path=path, rows=length,
                                        bytes=write_parquet(shard, path)))
            if self._options.writes_docarray:
                path = join_url(self._staging, "docarray", name + ".docs")
                size = write_bytes(table_to_shard_bytes(shard), path)
                yield Output(MAIN, dict(kind="docarray", bucket=bucket, part=part, path=path, rows=length, bytes=size))
        yield Output(COUNTS, count(STAGE, documents_written=table.num_rows, duplicates_removed=removed))


class _WriteDeadLettersFn(beam.DoFn):
    def __init__(self, staging: str, options: OutputOptions):
        self._staging, self._options = staging, options

    def process(self, element) -> Iterator[dict]:
        bucket, batches = element
        table = pa.Table.from_batches(list(batches), schema=DEAD_LETTER_SCHEMA).sort_by(
            [("source_file", "ascending"), ("source_row", "ascending"), ("stage", "ascending"), ("reason", "ascending")])
        for part, (offset, length) in enumerate(shard_slices(table.num_rows, table.nbytes, self._options)):
            path = join_url(self._staging, "dead_letters", f"b{bucket:05d}-{part:04d}.parquet")
            yield dict(kind="dead_letters", bucket=bucket, part=part, path=path, rows=length,
                       bytes=write_parquet(table.slice(offset, length), path))


class WriteDocuments(beam.PTransform):
    """PCollection[candidate RecordBatch] -> (PCollection of file descriptor dicts, PCollection of COUNTS dicts)."""

    def __init__(self, staging: str, options: OutputOptions, buckets: int, remove_duplicates: bool):
        super().__init__()
        self._staging, self._options, self._buckets, self._remove = staging, options, buckets, remove_duplicates

    def expand(self, candidates):
        spilled = (
            candidates
            | "SpillToBuckets" >> beam.ParDo(_SpillFn(self._staging, self._buckets, self._remove)).with_output_types(Output)
            | "SplitSpilled" >> SplitOutputs((MAIN, COUNTS))
        )
        written = (
            spilled[MAIN]
            | "GroupByBucket" >> beam.GroupByKey()
            | "WriteBuckets" >> beam.ParDo(_WriteBucketFn(self._staging, self._options, self._remove)).with_output_types(
                Output)
            | "SplitWritten" >> SplitOutputs((MAIN, COUNTS))
        )
        counts = (spilled[COUNTS], written[COUNTS]) | "WriteCounts" >> beam.Flatten()
        return written[MAIN], counts


class WriteDeadLetters(beam.PTransform):
    """PCollection[dead-letter RecordBatch] -> file descriptors (dicts), sorted by source file and row."""

    def __init__(self, staging: str, options: OutputOptions, buckets: int):
        super().__init__()
        self._staging, self._options, self._buckets = staging, options, buckets

    def expand(self, dead):
        buckets = self._buckets
        return (
            dead
            | "CutByRow" >> beam.FlatMap(lambda b: split_by_bucket(
                b, pc.fill_null(b.column("source_row"), 0).to_numpy().astype(np.uint64), buckets))
            | "GroupByRow" >> beam.GroupByKey()
            | "WriteDeadLetters" >> beam.ParDo(_WriteDeadLettersFn(self._staging, self._options))
        )
