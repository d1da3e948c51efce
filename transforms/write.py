"""Write stage: candidate documents and dead letters -> sharded files in the run's staging folder.

The stage's one shuffle: candidate batches are cut by `_key % buckets` and grouped, so equal documents
meet in one bucket. There they are sorted by key, numbered by occurrence (k = 0, 1, ...), deduplicated
where the layout says so (k > 0 dropped), given ids (hex key, plus `-k` for k > 0) and written as shards
of at most `shard_rows` rows and `shard_bytes` bytes. Emits one descriptor dict per file written.
"""
import math
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.docarray_docs import docs_to_bytes, table_to_docs
from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA
from schemas.options import OutputOptions
from transforms.counting import COUNTS, count
from transforms.layout import KEY
from transforms.storage import join_url, write_bytes, write_parquet

STAGE = "write"


def split_by_bucket(batch: pa.RecordBatch, keys: np.ndarray, buckets: int) -> Iterator[tuple]:
    """A batch and its (n,) uint64 keys -> (bucket, sub-batch) for every bucket present."""
    bucket_of = (keys % np.uint64(buckets)).astype(np.int64)
    order = np.argsort(bucket_of, kind="stable")
    sorted_buckets = bucket_of[order]
    starts = np.flatnonzero(np.r_[True, sorted_buckets[1:] != sorted_buckets[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(order)]):
        yield int(sorted_buckets[start]), batch.take(pa.array(order[start:end]))


def finish_documents(table: pa.Table, remove_duplicates: bool) -> tuple[pa.Table, int]:
    """Candidates of one bucket -> (documents of DOCUMENT_SCHEMA sorted by id, duplicates removed)."""
    table = table.sort_by([(KEY, "ascending"), ("source_file", "ascending"), ("source_row", "ascending")])
    keys = table.column(KEY).to_numpy()
    first_of_run = np.r_[True, keys[1:] != keys[:-1]] if keys.size else np.zeros(0, dtype=bool)
    run_start = np.maximum.accumulate(np.where(first_of_run, np.arange(keys.size), 0)) if keys.size else keys
    occurrence = np.arange(keys.size) - run_start
    removed = 0
    if remove_duplicates:
        removed = int((occurrence > 0).sum())
        table, keys, occurrence = table.filter(pa.array(occurrence == 0)), keys[occurrence == 0], occurrence[occurrence == 0]
    ids = [f"{k:016x}" if n == 0 else f"{k:016x}-{n}" for k, n in zip(keys.tolist(), occurrence.tolist())]
    table = table.drop_columns([KEY]).add_column(0, "id", pa.array(ids, type=pa.string()))
    return table.cast(DOCUMENT_SCHEMA), removed


def shard_slices(num_rows: int, num_bytes: int, options: OutputOptions) -> list[tuple[int, int]]:
    """(offset, length) of each shard so that none exceeds shard_rows rows or (about) shard_bytes bytes."""
    shards = max(1, math.ceil(num_rows / options.shard_rows), math.ceil(num_bytes / options.shard_bytes))
    bounds = np.linspace(0, num_rows, shards + 1).round().astype(int)
    return [(int(a), int(b - a)) for a, b in zip(bounds, bounds[1:]) if b > a]


class _WriteBucketFn(beam.DoFn):
    """(bucket, [candidate batches]) -> descriptors of the files written; tagged COUNTS."""

    def __init__(self, staging: str, options: OutputOptions, remove_duplicates: bool):
        self._staging, self._options, self._remove = staging, options, remove_duplicates

    def process(self, element) -> Iterator:
        bucket, batches = element
        table, removed = finish_documents(pa.Table.from_batches(list(batches)), self._remove)
        for part, (offset, length) in enumerate(shard_slices(table.num_rows, table.nbytes, self._options)):
            shard = table.slice(offset, length)
            name = f"b{bucket:05d}-{part:04d}"
            if self._options.writes_parquet:
                path = join_url(self._staging, "documents", name + ".parquet")
                yield dict(kind="documents", bucket=bucket, part=part, path=path, rows=length, bytes=write_parquet(shard, path))
            if self._options.writes_docarray:
                path = join_url(self._staging, "docarray", name + ".docs")
                size = write_bytes(docs_to_bytes(table_to_docs(shard)), path)
                yield dict(kind="docarray", bucket=bucket, part=part, path=path, rows=length, bytes=size)
        yield beam.pvalue.TaggedOutput(COUNTS, count(STAGE, documents_written=table.num_rows, duplicates_removed=removed))


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
    """PCollection[candidate RecordBatch] -> main: file descriptors (dicts); tagged COUNTS."""

    def __init__(self, staging: str, options: OutputOptions, buckets: int, remove_duplicates: bool):
        super().__init__()
        self._staging, self._options, self._buckets, self._remove = staging, options, buckets, remove_duplicates

    def expand(self, candidates):
        buckets = self._buckets
        return (
            candidates
            | "CutByBucket" >> beam.FlatMap(lambda b: split_by_bucket(b, b.column(KEY).to_numpy(), buckets))
            | "GroupByBucket" >> beam.GroupByKey()
            | "WriteBuckets" >> beam.ParDo(_WriteBucketFn(self._staging, self._options, self._remove)).with_outputs(
                COUNTS, main="files")
        )


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
