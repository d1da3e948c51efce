"""Files cut into small byte ranges (--range-bytes 1024) read exactly like Python's csv reads them whole."""
import collections
import csv
import io
import random

import pytest
from conftest import assert_reconciled, dead_letters, python_csv_records, run_prepare

import pipelines

RANGE = ("--range-bytes", "1024")
PIECES = ["alpha", "beta", "gamma, delta", 'say "hi"', "line\nbreak", "crlf\r\ninside", "cr\ronly", '""',
          "a,b,c", '"', "end,", '"start', "x"]


def random_field(rng: random.Random) -> str:
    """A non-blank value with commas, quotes and line breaks in random places (never an image path)."""
    return "w " + " ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4))) + f" {rng.randint(0, 99999)}"


def csv_text(rows, dialect="excel") -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf, dialect=dialect).writerows(rows)
    return buf.getvalue()


@pytest.fixture(scope="module")
def labeled_file(tmp_path_factory):
    """(text, output) of ~3000 labeled rows whose quoted fields hold commas, quotes and line breaks."""
    rng = random.Random(20240611)
    rows = [[random_field(rng), f"label {rng.randint(0, 40)}"] for _ in range(3000)]
    text = csv_text(rows)
    assert len(text.encode()) > 100 * 1024  # well over a hundred ranges
    return text, run_prepare(tmp_path_factory.mktemp("labeled"), text, "--is-labeled", *RANGE)


def test_split_labeled_file_gives_python_csv_rows(labeled_file):
    """Every (text, label) equals a Python csv record: none lost, none duplicated, none corrupted."""
    text, out = labeled_file
    table = pipelines.load_table(str(out))
    got = collections.Counter(zip(table.column("text").to_pylist(), table.column("label").to_pylist()))
    expected = collections.Counter(tuple(fields) for _, fields in python_csv_records(text))
    assert got == expected


def test_split_labeled_file_keeps_line_numbers(labeled_file):
    """source_row is the line where Python's csv starts each record, across range boundaries."""
    text, out = labeled_file
    table = pipelines.load_table(str(out))
    got = sorted(zip(table.column("source_row").to_pylist(), table.column("text").to_pylist()))
    assert got == sorted((line, fields[0]) for line, fields in python_csv_records(text))


def test_split_labeled_file_has_no_dead_letters(labeled_file):
    _, out = labeled_file
    assert dead_letters(out) == []
    c = assert_reconciled(out)
    assert c["rows_read"] == 3000


@pytest.mark.parametrize("dialect", ["excel", "unix"])
def test_split_values_file_gives_python_csv_cells(tmp_path, dialect):
    """--layout values on a split 3-column file: the multiset of texts is the multiset of csv cells."""
    rng = random.Random(7)
    rows = [[random_field(rng) for _ in range(3)] for _ in range(1500)]
    text = csv_text(rows, dialect)
    out = run_prepare(tmp_path, text, "--layout", "values", *RANGE)
    table = pipelines.load_table(str(out))
    expected = collections.Counter(cell for _, fields in python_csv_records(text) for cell in fields)
    assert collections.Counter(table.column("text").to_pylist()) == expected
    assert dead_letters(out) == []


def test_stray_quote_in_unquoted_field_gives_python_csv_rows(tmp_path):
    """A stray quote in an unquoted field (unsafe to split on quote parity) in the middle of a large file:
    still exactly Python csv's rows."""
    rng = random.Random(11)
    rows = [[random_field(rng), f"label {i % 9}"] for i in range(2000)]
    lines = csv_text(rows[:1000]) + 'he said "hi" there,label x\r\n' + 'ends with quote",label y\r\n' + csv_text(rows[1000:])
    out = run_prepare(tmp_path, lines, "--is-labeled", *RANGE)
    table = pipelines.load_table(str(out))
    got = collections.Counter(zip(table.column("source_row").to_pylist(), table.column("text").to_pylist(),
                                  table.column("label").to_pylist()))
    expected = collections.Counter((line, *fields) for line, fields in python_csv_records(lines))
    assert got == expected
    assert sum(expected.values()) == 2002
    assert_reconciled(out)


def test_unbalanced_quote_near_the_end_gives_python_csv_rows(tmp_path):
    """An opening quote that is never closed swallows the rest of the file in Python's csv; a split
    reader must not invent records after it (the whole tail is one field, here a field-count dead letter)."""
    rows = [[f"sentence {i}, with a comma", f"label {i % 3}"] for i in range(600)]
    text = csv_text(rows) + '"never closed,label z\r\n' + csv_text([["after", "label q"]] * 50)
    out = run_prepare(tmp_path, text, "--is-labeled", *RANGE)
    table = pipelines.load_table(str(out))
    expected = [(line, *fields) for line, fields in python_csv_records(text) if len(fields) == 2]
    got = sorted(zip(table.column("source_row").to_pylist(), table.column("text").to_pylist(),
                     table.column("label").to_pylist()))
    assert got == sorted(expected)
    assert len(dead_letters(out)) == sum(1 for _, f in python_csv_records(text) if len(f) != 2)
    assert_reconciled(out)


def test_invalid_utf8_byte_in_a_split_file_spoils_only_its_record(tmp_path):
    """One invalid byte inside a multi-line quoted record of a split file: that record (at its first line)
    is an 'encoding' dead letter; every other record is read as Python's csv reads it."""
    rows = [[f"Crème {i}, brûlée \"x\"\nmore", f"label {i % 3}"] for i in range(400)]
    data = csv_text(rows).encode("utf-8")
    at = data.index("Crème 200,".encode())
    data = data[:at] + b"\xff" + data[at:]
    out = run_prepare(tmp_path, data, "--is-labeled", *RANGE)
    dead = dead_letters(out)
    assert [(d["source_row"], d["reason_class"]) for d in dead] == [(2 * 200 + 1, "encoding")]
    table = pipelines.load_table(str(out))
    got = collections.Counter(zip(table.column("text").to_pylist(), table.column("label").to_pylist()))
    assert got == collections.Counter(tuple(r) for i, r in enumerate(rows) if i != 200)
    assert_reconciled(out)
