"""Cut a CSV file into byte ranges that can be parsed in parallel, and read one range's bytes.

A file larger than `range_bytes` is cut into ranges of about equal size, a multiple of 4 of them (schemas.
options.work_units: 2 or 4 workers parse them together), each cut just after a line end that lies outside
quoted fields (found by a vectorized scan, see csv_scan), so no range starts inside a record; a file whose
quotes are not well formed, or that needs Python's csv module for another reason, is one range read whole
with Python's csv.
"""
import math

import fsspec

from schemas.inputs import ByteRange, InputFile
from schemas.options import work_units
from transforms.read.csv_parse import ascii_compatible
from transforms.read.csv_scan import plan_splits

SCAN_CHUNK_BYTES = 16 * 1024 * 1024


def plan_ranges(file: InputFile, range_bytes: int) -> list[ByteRange]:
    """An input file -> the byte ranges to parse, in file order."""
    if file.size <= range_bytes:
        return [ByteRange(file, 0, file.size)]
    whole = [ByteRange(file, 0, file.size, python_csv=True)]
    if not ascii_compatible(file.encoding):
        return whole
    step = math.ceil(file.size / work_units(file.size, range_bytes))
    with fsspec.open(file.url, "rb") as handle:
        plan = plan_splits(iter(lambda: handle.read(SCAN_CHUNK_BYTES), b""), file.size, step, file.dialect.delimiter)
    if not plan.safe or (plan.has_quotes and file.dialect.skipinitialspace):
        return whole
    return [ByteRange(file, start, end, first_line=line + 1)
            for start, end, line in zip(plan.boundaries, plan.boundaries[1:], plan.line_index)]


def read_range(rng: ByteRange) -> bytes:
    """The bytes [start, end) of a range's file."""
    with fsspec.open(rng.file.url, "rb") as handle:
        handle.seek(rng.start)
        return handle.read(rng.end - rng.start)
