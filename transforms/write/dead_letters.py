"""Dead-letter stage: every dead letter the flow carries -> Parquet shards in `dead_letters/`, sorted by
source file and row, beside the documents' shards.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.documents import DEAD_LETTER_SCHEMA
from schemas.options import OutputOptions
from transforms.coders import batch_bytes, bytes_batch
from transforms.group import split_by_bucket
from transforms.stage import StageOutput
from transforms.write.formats import DEAD_LETTERS
from transforms.write.shard_writer import FileRecord
from transforms.write.write_shards import write_bucket

SORT_KEYS = [("source_file", "ascending"), ("source_row", "ascending"), ("stage", "ascending"), ("reason", "ascending")]


class _WriteDeadLettersFn(beam.DoFn):
    def __init__(self, staging: str, options: OutputOptions):
        self._staging, self._options = staging, options

    def process(self, element) -> Iterator[FileRecord]:
        bucket, batches = element
        table = pa.Table.from_batches(list(map(bytes_batch, batches)), schema=DEAD_LETTER_SCHEMA).sort_by(SORT_KEYS)
        yield from write_bucket(table, bucket, self._staging, self._options, (DEAD_LETTERS,))


def _cut_by_row(batch: pa.RecordBatch, buckets: int):
    """A dead-letter batch -> (bucket, Arrow IPC bytes) per bucket of its rows (bytes through the shuffle:
    see transforms.coders.batch_bytes)."""
    rows = pc.fill_null(batch.column("source_row"), 0).to_numpy().astype(np.uint64)
    return [(bucket, batch_bytes(part)) for bucket, part in split_by_bucket(batch, rows, buckets)]


class WriteDeadLetters(beam.PTransform):
    """Stage: main = FileRecords of the documents; dead letters = all of the run's -> main = FileRecords
    of the documents and of the dead-letter shards; no dead letters left to write."""

    def __init__(self, staging: str, options: OutputOptions, buckets: int):
        super().__init__()
        self._staging, self._options, self._buckets = staging, options, buckets

    def expand(self, flow: StageOutput) -> StageOutput:
        written = (
            flow.dead_letters
            | "AllDeadLetters" >> beam.Flatten(pipeline=flow.main.pipeline)
            | "CutByRow" >> beam.FlatMap(_cut_by_row, self._buckets)
            | "GroupByRow" >> beam.GroupByKey()
            | "WriteDeadLetters" >> beam.ParDo(_WriteDeadLettersFn(self._staging, self._options))
        )
        files = (flow.main, written) | "AllFiles" >> beam.Flatten()
        return StageOutput(files, (), flow.counts)
