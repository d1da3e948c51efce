"""Read stage: CSV files (or their planned byte ranges) -> Arrow row batches, parsed in parallel.

Each row batch holds the fields as strings (`f0`, `f1`, ...) plus `source_file` and `source_row` (the
1-based physical line where the record starts). Rows that cannot be parsed become dead letters.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import hashlib
import json
from typing import Iterator, Optional

import apache_beam as beam

from schemas.inputs import ByteRange, InputFile
from schemas.options import ReadTuning
from transforms.read.byte_ranges import plan_ranges, read_range
from transforms.read.csv_parse import parse_range
from transforms.stage import StageOutput, apply_step, count, step_outputs
from transforms.storage import join_url, write_bytes

STAGE = "read"


class _PlanRangesFn(beam.DoFn):
    def __init__(self, range_bytes: int):
        self._range_bytes = range_bytes

    def process(self, file: InputFile) -> Iterator[ByteRange]:
        yield from plan_ranges(file, self._range_bytes)


class _ParseRangeFn(beam.DoFn):
    def __init__(self, tuning: ReadTuning, progress_folder: Optional[str]):
        self._tuning = tuning
        self._progress_folder = progress_folder

    def process(self, rng: ByteRange) -> Iterator:
        batches, dead, header = parse_range(read_range(rng), rng, self._tuning.batch_rows, self._tuning.max_record_bytes)
        good = sum(b.num_rows for b in batches)
        yield from step_outputs(batches, dead, count(
            STAGE, dead=dead, rows_read=good + len(dead), header_rows=header, bytes_read=rng.end - rng.start,
            files_read=int(rng.start == 0)))
        if self._progress_folder:
            marker = hashlib.blake2b(f"{rng.file.url}:{rng.start}".encode(), digest_size=8).hexdigest()
            write_bytes(json.dumps({"rows": good + len(dead), "bytes": rng.end - rng.start}).encode(),
                        join_url(self._progress_folder, marker + ".json"))


class _SpreadRanges(beam.PTransform):
    """Redistribute byte ranges across workers (a GroupByKey on the range; Beam's Reshuffle is a no-op on
    the DaskRunner, which would parse every range of a file in one task)."""

    def expand(self, ranges: beam.PCollection) -> beam.PCollection:
        return (
            ranges
            | "KeyByRange" >> beam.Map(lambda r: ((r.file.url, r.start), r))
            | "GroupByRange" >> beam.GroupByKey()
            | "Ranges" >> beam.FlatMap(lambda keyed: keyed[1])
        )


class ReadCsv(beam.PTransform):
    """Stage: main = InputFiles, or ByteRanges when `planned` -> main = RecordBatches of rows
    (f0.., source_file, source_row)."""

    def __init__(self, tuning: ReadTuning, progress_folder: Optional[str] = None, planned: bool = False):
        super().__init__()
        self._tuning = tuning
        self._progress_folder = progress_folder
        self._planned = planned

    def expand(self, flow: StageOutput) -> StageOutput:
        if not self._planned:
            ranges = (flow.main
                      | "PlanRanges" >> beam.ParDo(_PlanRangesFn(self._tuning.range_bytes))
                      | "SpreadRanges" >> _SpreadRanges())
            flow = flow.advance(ranges)
        return apply_step(flow, "ParseRanges", _ParseRangeFn(self._tuning, self._progress_folder))
