"""Fuzz target: arbitrary bytes + a range size -> plan_splits, then parse every range (csv_parse.parse_range).

Input layout: byte 0 picks the delimiter and the header flag, bytes 1-2 the range size (1..256 bytes) and the
read chunk size (1..64 bytes); the rest is the file. Properties: planning and parsing never raise; ranges are
increasing and cover the file; the rows and dead letters found across ranges (source row, fields, reason
class) equal those found when the whole file is one range.
Run: python tests/fuzz/fuzz_csv_splitter.py [libFuzzer flags] [corpus folders]
"""
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
with atheris.instrument_imports(include=["transforms"]):
    from schemas.inputs import ByteRange, Dialect, InputFile
    from schemas.options import ReadTuning
    from transforms.read.csv_parse import parse_range
    from transforms.read.csv_scan import plan_splits

DELIMITERS = ",\t;"
BATCH_ROWS = 7  # small, so batching boundaries are exercised too


def found(buf: bytes, ranges: list) -> tuple[list, list]:
    """Parse each range of buf -> (sorted (source_row, fields) of rows, sorted (source_row, reason_class))."""
    rows, dead = [], []
    for rng in ranges:
        batches, letters, _ = parse_range(buf[rng.start:rng.end], rng, BATCH_ROWS, ReadTuning.max_record_bytes)
        for batch in batches:
            fields = [batch.column(i).to_pylist() for i in range(batch.num_columns - 2)]
            lines = batch.column("source_row").to_pylist()
            rows += [(line, tuple(f[r] for f in fields)) for r, line in enumerate(lines)]
        dead += [(d.source_row, d.reason_class) for d in letters]
    return sorted(rows), sorted(dead)


def check(data: bytes) -> None:
    """One fuzz input -> None, or AssertionError / any exception for a property that does not hold."""
    if len(data) < 3:
        return
    delimiter, header = DELIMITERS[data[0] % 3], bool(data[0] & 4)
    range_bytes, chunk_bytes = 1 + data[1], 1 + data[2] % 64
    buf = data[3:]
    fields = 1 + (data[0] >> 3) % 4
    file = InputFile("memory://fuzz.csv", len(buf), Dialect(delimiter), "utf-8", header, fields)
    chunks = [buf[i:i + chunk_bytes] for i in range(0, len(buf), chunk_bytes)]
    plan = plan_splits(chunks, len(buf), range_bytes, delimiter)
    bounds = plan.boundaries
    assert bounds[0] == 0 and bounds[-1] == len(buf), bounds
    assert all(a < b for a, b in zip(bounds, bounds[1:])) or len(buf) == 0, bounds
    assert len(plan.line_index) == len(bounds) - 1, plan
    if not plan.safe:
        return
    ranges = [ByteRange(file, start, end, first_line=line + 1)
              for start, end, line in zip(bounds, bounds[1:], plan.line_index)]
    split = found(buf, ranges)
    whole = found(buf, [ByteRange(file, 0, len(buf))])
    assert split == whole, (split, whole)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    check(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
