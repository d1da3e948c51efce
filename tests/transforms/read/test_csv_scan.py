"""The vectorized record scan and the split planner agree with Python's csv module."""
import csv
import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.read.csv_scan import plan_splits, positions_of, scan_records

CELL = st.text(alphabet=st.sampled_from(list('ab ,"\n\r\tzé€')), max_size=8)
TABLE = st.lists(st.lists(CELL, min_size=2, max_size=2), min_size=1, max_size=25)


def write(rows, delimiter=",", lineterminator="\n") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=lineterminator).writerows(rows)
    return out.getvalue().encode()


def python_rows(data: bytes, delimiter=","):
    return [r for r in csv.reader(io.StringIO(data.decode(), newline=""), delimiter=delimiter) if r]


@settings(max_examples=300, deadline=None)
@given(TABLE, st.sampled_from([",", "\t"]), st.sampled_from(["\n", "\r\n"]))
def test_records_match_python_csv(rows, delimiter, lineterminator):
    """Each scanned record, parsed alone, is the row Python's csv reads there, with its field count and
    the number of line ends inside it."""
    data = write(rows, delimiter, lineterminator)
    records = scan_records(data, delimiter)
    assert records is not None
    expected = python_rows(data, delimiter)
    got = [python_rows(data[s:e], delimiter)[0] for s, e in zip(records.starts, records.ends)]
    assert got == expected
    assert records.fields.tolist() == [len(r) for r in expected]
    inner_line_ends = [len(data[s:e].splitlines()) - 1 for s, e in zip(records.starts, records.ends)]
    assert (records.last_line - records.line_index).tolist() == inner_line_ends


@settings(max_examples=200, deadline=None)
@given(TABLE, st.integers(1, 40), st.integers(1, 9))
def test_splits_never_cut_a_record(rows, range_bytes, chunk_bytes):
    """Whatever the range size and read chunking, ranges parsed apart give Python csv's rows, and the
    line index of each range start is the number of physical lines before it."""
    data = write(rows)
    chunks = [data[i:i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
    plan = plan_splits(chunks, len(data), range_bytes, ",")
    assert plan.safe
    rows_by_range = []
    for start, end in zip(plan.boundaries, plan.boundaries[1:]):
        rows_by_range += python_rows(data[start:end])
    assert rows_by_range == python_rows(data)
    for start, line in zip(plan.boundaries, plan.line_index):
        assert line == len(io.StringIO(data[:start].decode(), newline="").readlines())


def test_stray_quotes_make_the_scan_refuse():
    """Quotes that Python's csv reads literally (inside an unquoted field, after a closing quote) or an
    unterminated quote mean parity is not CSV state: the scan and the planner say so."""
    for data in (b'a"b,c\n', b'"ab"c,d\n', b'"abc\n', b'x, "y"\n'):
        assert scan_records(data, ",") is None
        assert not plan_splits([data], len(data), 2, ",").safe


def test_blank_lines_are_not_records():
    records = scan_records(b"a,b\n\n\r\nc,d\r\n", ",")
    assert len(records) == 2 and records.line_index.tolist() == [0, 3]


@given(st.binary(max_size=64), st.sampled_from(b'\n,"\x00'), st.integers(1, 9))
def test_positions_found_block_by_block_are_all_positions(data, byte, block):
    a = np.frombuffer(data, dtype=np.uint8)
    assert positions_of(a, byte, block).tolist() == np.flatnonzero(a == byte).tolist()
