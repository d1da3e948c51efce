"""Read stage: CSV files -> Arrow row batches, parsed in parallel by byte ranges.

A file larger than `range_bytes` is cut just after line ends that lie outside quoted fields (found by a
vectorized scan, see csv_scan), so no range starts inside a record; a file whose quotes are not well
formed, or that needs Python's csv module for another reason, is read whole.
"""
import hashlib
import json
from typing import Iterator, Optional

import apache_beam as beam
import fsspec
import pyarrow as pa

from schemas.inputs import ByteRange, InputFile
from schemas.options import ReadTuning
from transforms.counting import count, dead_letters
from transforms.csv_parse import ascii_compatible, parse_range
from transforms.csv_scan import plan_splits
from transforms.storage import join_url, write_bytes
from transforms.outputs import COUNTS, DEAD_LETTERS, MAIN, Output, SplitOutputs

STAGE = "read"
SCAN_CHUNK_BYTES = 16 * 1024 * 1024


def plan_ranges(file: InputFile, range_bytes: int) -> list[ByteRange]:
    """An input file -> the byte ranges to parse, in file order."""
    if file.size <= range_bytes:
        return [ByteRange(file, 0, file.size)]
    whole = [ByteRange(file, 0, file.size, python_csv=True)]
    if not ascii_compatible(file.encoding):
        return whole
    with fsspec.open(file.url, "rb") as handle:
        plan = plan_splits(iter(lambda: handle.read(SCAN_CHUNK_BYTES), b""), file.size, range_bytes,
                           file.dialect.delimiter)
    if not plan.safe or (plan.has_quotes and file.dialect.skipinitialspace):
        return whole
    return [ByteRange(file, start, end, first_line=line + 1)
            for start, end, line in zip(plan.boundaries, plan.boundaries[1:], plan.line_index)]


def read_range(rng: ByteRange) -> bytes:
    with fsspec.open(rng.file.url, "rb") as handle:
        handle.seek(rng.start)
        return handle.read(rng.end - rng.start)


class _PlanRangesFn(beam.DoFn):
    def __init__(self, range_bytes: int):
        self._range_bytes = range_bytes

    def process(self, file: InputFile) -> Iterator[ByteRange]:
        yield from plan_ranges(file, self._range_bytes)


class _ParseRangeFn(beam.DoFn):
    def __init__(self, batch_rows: int, progress_folder: Optional[str]):
        self._batch_rows = batch_rows
        self._progress_folder = progress_folder

    def process(self, rng: ByteRange) -> Iterator:
        batches, dead, header = parse_range(read_range(rng), rng, self._batch_rows)
        yield from (Output(MAIN, batch) for batch in batches)
        if dead:
            yield Output(DEAD_LETTERS, dead_letters(dead))
        good = sum(b.num_rows for b in batches)
        yield Output(COUNTS, count(
            STAGE, dead=dead, rows_read=good + len(dead), header_rows=header, bytes_read=rng.end - rng.start,
            files_read=int(rng.start == 0)))
        if self._progress_folder:
            marker = hashlib.blake2b(f"{rng.file.url}:{rng.start}".encode(), digest_size=8).hexdigest()
            write_bytes(json.dumps({"rows": good + len(dead), "bytes": rng.end - rng.start}).encode(),
                        join_url(self._progress_folder, marker + ".json"))


class _SpreadRanges(beam.PTransform):
    """Redistribute byte ranges across workers (a GroupByKey on the range; Beam's Reshuffle is a no-op on
    the DaskRunner, which would parse every range of a file in one task)."""

    def expand(self, ranges):
        return (
            ranges
            | "KeyByRange" >> beam.Map(lambda r: ((r.file.url, r.start), r))
            | "GroupByRange" >> beam.GroupByKey()
            | "Ranges" >> beam.FlatMap(lambda keyed: keyed[1])
        )


class ReadCsv(beam.PTransform):
    """PCollection[InputFile], or of ByteRange when `planned` -> {MAIN: RecordBatches of rows
    (f0.., source_file, source_row), DEAD_LETTERS: RecordBatches, COUNTS: dicts}."""

    def __init__(self, tuning: ReadTuning, progress_folder: Optional[str] = None, planned: bool = False):
        super().__init__()
        self._tuning = tuning
        self._progress_folder = progress_folder
        self._planned = planned

    def expand(self, files_or_ranges):
        ranges = files_or_ranges
        if not self._planned:
            ranges = (files_or_ranges
                      | "PlanRanges" >> beam.ParDo(_PlanRangesFn(self._tuning.range_bytes))
                      | "SpreadRanges" >> _SpreadRanges())
        outputs = (
            ranges
            | "ParseRanges" >> beam.ParDo(_ParseRangeFn(self._tuning.batch_rows, self._progress_folder)).with_output_types(Output)
        )
        return outputs | "Split" >> SplitOutputs((MAIN, DEAD_LETTERS, COUNTS), pa.RecordBatch)
