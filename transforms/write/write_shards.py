"""Write stage: each bucket's finished documents -> shards of every output format in the staging folder.

A bucket's documents lose any URL credentials (uris.redact_documents), then the table (each split's part of
it, with --split) is cut into shards of at most `shard_rows` rows and about `shard_bytes` bytes; each shard
is written once per format the run asked for (write.formats), staged as `FOLDER/[SPLIT-]bNNNNN-PPPP.SUFFIX`.
The commit stage later names them `part-NNNNN-of-MMMMM` (or `SPLIT-NNNNN-of-MMMMM`) in (bucket, part) order.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import math
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.options import OutputOptions
from transforms.stage import COUNTS, MAIN, Output, StageOutput, apply_step, count
from transforms.storage import join_url
from transforms.uris import redact_documents
from transforms.write.shard_writer import FileRecord, ShardWriter, write_shard

STAGE = "write"


def shard_slices(num_rows: int, num_bytes: int, options: OutputOptions) -> list[tuple[int, int]]:
    """(offset, length) of each shard so that none exceeds shard_rows rows or (about) shard_bytes bytes."""
    shards = max(1, math.ceil(num_rows / options.shard_rows), math.ceil(num_bytes / options.shard_bytes))
    bounds = np.linspace(0, num_rows, shards + 1).round().astype(int)
    return [(int(a), int(b - a)) for a, b in zip(bounds, bounds[1:]) if b > a]


def staged_path(staging: str, writer: type[ShardWriter], bucket: int, part: int, split: str = "") -> str:
    """Where a shard waits for the commit: FOLDER/[SPLIT-]bNNNNN-PPPP.SUFFIX under the staging folder."""
    prefix = f"{split}-" if split else ""
    return join_url(staging, writer.folder, f"{prefix}b{bucket:05d}-{part:04d}{writer.suffix}")


def split_tables(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """A bucket's documents -> (split name, its documents) per split present, by name; ('', all) without
    splits (and for tables that have none, such as dead letters)."""
    splits = table.column("split") if "split" in table.column_names else None
    if splits is None or splits.null_count == len(splits):
        yield "", table
        return
    for name in sorted(pc.unique(splits).to_pylist()):
        yield name, table.filter(pc.equal(splits, name))


def write_bucket(table, bucket: int, staging: str, options: OutputOptions,
                 writers: tuple[type[ShardWriter], ...]) -> Iterator[FileRecord]:
    """One bucket's table -> its shards (per split, when the documents have one), in every format of
    `writers` -> their FileRecords."""
    for split, documents in split_tables(table):
        for part, (offset, length) in enumerate(shard_slices(documents.num_rows, documents.nbytes, options)):
            shard = documents.slice(offset, length)
            for writer in writers:
                yield write_shard(writer, shard, staged_path(staging, writer, bucket, part, split), bucket, part, split)


class _WriteBucketFn(beam.DoFn):
    """(bucket, documents Table) -> Output(MAIN, FileRecord) per file written; Output(COUNTS, documents_written)."""

    def __init__(self, staging: str, options: OutputOptions, writers: tuple):
        self._staging, self._options, self._writers = staging, options, writers

    def process(self, element) -> Iterator[Output]:
        bucket, table = element
        for record in write_bucket(redact_documents(table), bucket, self._staging, self._options, self._writers):
            yield Output(MAIN, record)
        yield Output(COUNTS, count(STAGE, documents_written=table.num_rows))


class WriteShards(beam.PTransform):
    """Stage: main = (bucket, documents Table) pairs -> main = FileRecords of the staged shards."""

    def __init__(self, staging: str, options: OutputOptions, writers: tuple[type[ShardWriter], ...]):
        super().__init__()
        self._staging, self._options, self._writers = staging, options, writers

    def expand(self, flow: StageOutput) -> StageOutput:
        return apply_step(flow, "WriteBuckets", _WriteBucketFn(self._staging, self._options, self._writers), None)
