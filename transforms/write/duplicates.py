"""Duplicates stage: every duplicate record the flow carries -> Parquet shards in `duplicates/` (schema
schemas.documents.DUPLICATE_SCHEMA), sorted by source file and row, beside the documents' shards.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import apache_beam as beam

from schemas.documents import DUPLICATE_SCHEMA
from schemas.options import OutputOptions
from transforms.stage import StageOutput
from transforms.write.dead_letters import write_records
from transforms.write.formats import DUPLICATES

SORT_KEYS = [("source_file", "ascending"), ("source_row", "ascending"), ("kind", "ascending"), ("kept_id", "ascending")]


class WriteDuplicates(beam.PTransform):
    """Stage: main = FileRecords; duplicates = every duplicate record of the run -> main = those FileRecords
    and the duplicates' shards; no duplicate records left to write."""

    def __init__(self, staging: str, options: OutputOptions, buckets: int):
        super().__init__()
        self._staging, self._options, self._buckets = staging, options, buckets

    def expand(self, flow: StageOutput) -> StageOutput:
        written = write_records(flow.duplicates, self._staging, self._options, self._buckets, DUPLICATES,
                                DUPLICATE_SCHEMA, SORT_KEYS, "Duplicates", flow.main.pipeline)
        files = (flow.main, written) | "AllFilesAndDuplicates" >> beam.Flatten()
        return flow._replace(main=files, duplicates=())
