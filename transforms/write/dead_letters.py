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
from transforms.write.shard_writer import FileRecord, ShardWriter
from transforms.write.write_shards import write_bucket

SORT_KEYS = [("source_file", "ascending"), ("source_row", "ascending"), ("stage", "ascending"), ("reason", "ascending")]


class WriteRecordsFn(beam.DoFn):
    """(bucket, [record batches as Arrow IPC bytes]) -> the FileRecords of that bucket's shards of a record
    table (dead letters, duplicates), rows sorted by `sort_keys`."""

    def __init__(self, staging: str, options: OutputOptions, writer: type[ShardWriter], schema: pa.Schema,
                 sort_keys: list):
        self._staging, self._options, self._writer, self._schema, self._sort_keys = staging, options, writer, schema, sort_keys

    def process(self, element) -> Iterator[FileRecord]:
        bucket, batches = element
        table = pa.Table.from_batches(list(map(bytes_batch, batches)), schema=self._schema).sort_by(self._sort_keys)
        yield from write_bucket(table, bucket, self._staging, self._options, (self._writer,))


def cut_by_row(batch: pa.RecordBatch, buckets: int):
    """A batch of records with a `source_row` -> (bucket, Arrow IPC bytes) per bucket of its rows (bytes
    through the shuffle: see transforms.coders.batch_bytes)."""
    rows = pc.fill_null(batch.column("source_row"), 0).to_numpy().astype(np.uint64)
    return [(bucket, batch_bytes(part)) for bucket, part in split_by_bucket(batch, rows, buckets)]


def write_records(records: tuple, staging: str, options: OutputOptions, buckets: int, writer: type[ShardWriter],
                  schema: pa.Schema, sort_keys: list, label: str, pipeline: beam.Pipeline) -> beam.PCollection:
    """PCollections of record batches -> the FileRecords of their shards, written by `writer`."""
    return (records
            | f"All{label}" >> beam.Flatten(pipeline=pipeline)
            | f"Cut{label}ByRow" >> beam.FlatMap(cut_by_row, buckets)
            | f"Group{label}ByRow" >> beam.GroupByKey()
            | f"Write{label}" >> beam.ParDo(WriteRecordsFn(staging, options, writer, schema, sort_keys)))


class WriteDeadLetters(beam.PTransform):
    """Stage: main = FileRecords of the documents; dead letters = all of the run's -> main = FileRecords
    of the documents and of the dead-letter shards; no dead letters left to write."""

    def __init__(self, staging: str, options: OutputOptions, buckets: int):
        super().__init__()
        self._staging, self._options, self._buckets = staging, options, buckets

    def expand(self, flow: StageOutput) -> StageOutput:
        written = write_records(flow.dead_letters, self._staging, self._options, self._buckets, DEAD_LETTERS,
                                DEAD_LETTER_SCHEMA, SORT_KEYS, "DeadLetters", flow.main.pipeline)
        files = (flow.main, written) | "AllFiles" >> beam.Flatten()
        return flow._replace(main=files, dead_letters=())
