"""Duplicates stage: every duplicate record the flow carries -> Parquet shards in `duplicates/` (schema
schemas.documents.DUPLICATE_SCHEMA), one shard set per write bucket, rows sorted by source file and row.

Records come per bucket already (the group stage's exact repeats, the near-duplicate stage's clusters), as
(bucket, Arrow IPC bytes); a GroupByKey brings a bucket's few elements together, so nothing is cut per row.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

from typing import Iterator

import apache_beam as beam

from schemas.options import OutputOptions
from transforms.coders import bytes_batch
from transforms.duplicates.records import expanded
from transforms.stage import StageOutput
from transforms.write.formats import DUPLICATES
from transforms.write.shard_writer import FileRecord
from transforms.write.write_shards import write_bucket

SORT_KEYS = [("source_file", "ascending"), ("source_row", "ascending"), ("kind", "ascending")]


class _WriteBucketFn(beam.DoFn):
    """(bucket, [record batches as bytes]) -> the FileRecords of that bucket's duplicates shards."""

    def __init__(self, staging: str, options: OutputOptions):
        self._staging, self._options = staging, options

    def process(self, element) -> Iterator[FileRecord]:
        bucket, batches = element
        table = expanded([bytes_batch(data) for data in batches])
        yield from write_bucket(table.sort_by(SORT_KEYS), bucket, self._staging, self._options, (DUPLICATES,))


class WriteDuplicates(beam.PTransform):
    """Stage: main = FileRecords; duplicates = (bucket, record batch bytes) of the run -> main = those
    FileRecords and the duplicates' shards; no duplicate records left to write."""

    def __init__(self, staging: str, options: OutputOptions):
        super().__init__()
        self._staging, self._options = staging, options

    def expand(self, flow: StageOutput) -> StageOutput:
        written = (flow.duplicates
                   | "AllDuplicates" >> beam.Flatten(pipeline=flow.main.pipeline)
                   | "GroupDuplicatesByBucket" >> beam.GroupByKey()
                   | "WriteDuplicates" >> beam.ParDo(_WriteBucketFn(self._staging, self._options)))
        files = (flow.main, written) | "AllFilesAndDuplicates" >> beam.Flatten()
        return flow._replace(main=files, duplicates=())
