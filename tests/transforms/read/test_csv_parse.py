"""Property tests of the CSV layer up to documents: for any table csv.writer writes, in any dialect and cut
into byte ranges of any size, the documents are Python csv's rows and every other record is a dead letter.

The fast tests drive the read and layout functions below Beam (plan_ranges on a memory:// file, read_range,
parse_range, apply_layout); a few multi-KB files go through the real command line with --range-bytes 1024.
tests/transforms/read/test_csv_scan.py covers the scan and split planner alone; here the checks are on documents.
"""
import collections
import csv
import io
import itertools
import random

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import assert_reconciled, dead_letters, python_csv_records, run_prepare
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipelines
from schemas.inputs import NAMED_DIALECTS, ByteRange, InputFile
from schemas.options import ReadTuning
from schemas import modalities as modality
from transforms.read.csv_parse import RAW_PREFIX_BYTES, parse_range
from transforms.layout import LayoutSpec, apply_layout
from transforms.read.read_csv import plan_ranges, read_range

DIALECTS = ["excel", "excel-tab", "unix"]
TRICKY = list(',"\t\r\n ;\'') + ["\r\n", '""', "\ufeff", "\x00", "é", "€", "日本", "\u2028", "\x0b"]
# Cells: any unicode text, or text built mostly from characters that matter to CSV.
CELL = st.one_of(st.text(max_size=12),
                 st.lists(st.sampled_from(TRICKY + list("ab ")), max_size=8).map("".join))
_counter = itertools.count()


def write_table(rows: list[list[str]], dialect: str) -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf, dialect=dialect).writerows(rows)
    return buf.getvalue()


def blank(values: list[str]) -> list[bool]:
    """Whether each value is empty after trimming whitespace (the layout's own test, via Arrow)."""
    trimmed = pc.utf8_trim_whitespace(pa.array(values, type=pa.string()))
    return [n == 0 for n in pc.utf8_length(trimmed).to_pylist()]


def expected_documents(records, layout: str, fields: int) -> tuple[collections.Counter, int]:
    """Python csv records -> (Counter of (source_row, text, label) documents, number of dead letters).

    Dead letters: a wrong field count, a blank value, a NUL character (the read stage's rule: text holds
    none) or, for labeled rows, a text that looks like a media URI."""
    docs, dead = collections.Counter(), 0
    for line, record in records:
        if len(record) != fields or any(blank(record)) or any("\x00" in cell for cell in record):
            dead += 1
        elif layout == "labeled":
            if modality.classify(pa.array([record[0]]))[0] != 0:  # looks like an image or mesh URI
                dead += 1
            else:
                docs[(line, record[0], record[1])] += 1
        else:
            docs.update((line, cell, None) for cell in record)
    return docs, dead


def prepare_below_beam(data: bytes, dialect: str, fields: int, layout: str, range_bytes: int, batch_rows: int,
                       header: bool = False, max_record_bytes: int = ReadTuning.max_record_bytes,
                       python_csv: bool = False):
    """The read and layout stages on `data` without Beam -> (Counter of documents, dead letters, rows read, ranges).

    python_csv: read the file as one range with Python's csv (what the planner does when quotes are not well formed)."""
    url = f"memory://csv-properties/{next(_counter)}.csv"
    with fsspec.open(url, "wb") as handle:
        handle.write(data)
    try:
        file = InputFile(url, len(data), NAMED_DIALECTS[dialect], "utf-8", header, fields)
        ranges = [ByteRange(file, 0, len(data), python_csv=True)] if python_csv else plan_ranges(file, range_bytes)
        spec = LayoutSpec(layout, ("text",) * (1 if layout == "labeled" else fields))
        docs, dead, rows_read, headers = collections.Counter(), [], 0, 0
        for rng in ranges:
            batches, read_dead, skipped = parse_range(read_range(rng), rng, batch_rows, max_record_bytes)
            headers += skipped
            dead += read_dead
            rows_read += len(read_dead)
            for batch in batches:
                rows_read += batch.num_rows
                candidates, layout_dead, documented = apply_layout(batch, spec)
                dead += layout_dead
                assert documented + len(layout_dead) == batch.num_rows
                if candidates is not None:
                    table = candidates.to_pydict()
                    docs.update(zip(table["source_row"], table["text"], table["label"]))
                    assert set(table["modality"]) == {"text"}
        assert headers == int(header)
        return docs, dead, rows_read, ranges
    finally:
        fsspec.filesystem("memory").rm(url)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(CELL, min_size=2, max_size=2), min_size=1, max_size=12),
       dialect=st.sampled_from(DIALECTS), range_bytes=st.integers(1, 48), batch_rows=st.integers(1, 5))
def test_labeled_documents_are_python_csv_rows(rows, dialect, range_bytes, batch_rows):
    """Labeled layout: one document per record (text = field 1, label = field 2, source_row = its first
    line), whatever the range size; every other record is a dead letter, and the counts add up."""
    text = write_table(rows, dialect)
    records = python_csv_records(text, dialect)
    expected, expected_dead = expected_documents(records, "labeled", 2)
    docs, dead, rows_read, _ = prepare_below_beam(text.encode(), dialect, 2, "labeled", range_bytes, batch_rows)
    assert docs == expected
    assert len(dead) == expected_dead
    assert rows_read == len(records) == sum(docs.values()) + len(dead)
    assert all(d.reason and d.reason_class for d in dead)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), fields=st.integers(1, 3), dialect=st.sampled_from(DIALECTS),
       range_bytes=st.integers(1, 48))
def test_values_documents_are_python_csv_cells(data, fields, dialect, range_bytes):
    """Values layout: every cell of a well-formed record is a document; records with a blank cell are dead
    letters."""
    rows = data.draw(st.lists(st.lists(CELL, min_size=fields, max_size=fields), min_size=1, max_size=10))
    text = write_table(rows, dialect)
    records = python_csv_records(text, dialect)
    expected, expected_dead = expected_documents(records, "values", fields)
    docs, dead, rows_read, _ = prepare_below_beam(text.encode(), dialect, fields, "values", range_bytes, 3)
    assert docs == expected
    assert len(dead) == expected_dead
    assert rows_read == len(records)


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.lists(CELL, min_size=2, max_size=2), min_size=2, max_size=12),
       dialect=st.sampled_from(DIALECTS), range_bytes=st.integers(1, 24), data=st.data())
def test_split_reading_equals_whole_reading_with_foreign_records(rows, dialect, range_bytes, data):
    """Records with the wrong field count spliced between written rows: split ranges give the same documents
    and dead letters (by source row and reason class) as reading the file as one range."""
    cut = data.draw(st.integers(0, len(rows)))
    extra = write_table(data.draw(st.lists(st.lists(CELL, min_size=1, max_size=3), min_size=1, max_size=3)), dialect)
    text = write_table(rows[:cut], dialect) + extra + write_table(rows[cut:], dialect)
    whole = prepare_below_beam(text.encode(), dialect, 2, "labeled", 1 << 20, 4)
    split = prepare_below_beam(text.encode(), dialect, 2, "labeled", range_bytes, 4)
    assert split[0] == whole[0]
    assert sorted((d.source_row, d.reason_class) for d in split[1]) == \
        sorted((d.source_row, d.reason_class) for d in whole[1])
    assert split[2] == whole[2] == len(python_csv_records(text, dialect))


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.lists(CELL, min_size=2, max_size=2), min_size=1, max_size=8),
       dialect=st.sampled_from(DIALECTS), blank_lines=st.sampled_from(["", "\n" * 40, "\r\n" * 30, "\r" * 50]),
       range_bytes=st.integers(1, 48))
def test_header_is_the_first_record_whatever_the_ranges(rows, dialect, blank_lines, range_bytes):
    """With a header, exactly the first record is skipped, also when blank lines before it fill whole ranges."""
    text = blank_lines + write_table([["text", "label"]] + rows, dialect)
    records = python_csv_records(text, dialect)
    expected, expected_dead = expected_documents(records[1:], "labeled", 2)
    docs, dead, rows_read, _ = prepare_below_beam(text.encode(), dialect, 2, "labeled", range_bytes, 3, header=True)
    assert docs == expected
    assert len(dead) == expected_dead
    assert rows_read == len(records) - 1


def test_small_ranges_really_split():
    """The range sizes used above do cut a file into many ranges (so the properties test splitting)."""
    text = write_table([[f"text {i}", f"label {i}"] for i in range(20)], "excel")
    *_, ranges = prepare_below_beam(text.encode(), "excel", 2, "labeled", 16, 4)
    assert len(ranges) > 10


def generated_rows(seed: int, n: int, fields: int) -> list[list[str]]:
    """n rows of `fields` random cells mixing CSV-special characters with arbitrary unicode letters."""
    rng = random.Random(seed)
    alphabet = TRICKY + [chr(rng.randint(0x20, 0x2FFF)) for _ in range(40)] + list("abcdefgh  ")
    return [["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(fields)]
            for _ in range(n)]


@pytest.mark.parametrize("dialect,layout,fields,seed", [
    ("excel", "labeled", 2, 1), ("excel-tab", "labeled", 2, 2), ("unix", "values", 3, 3)])
def test_cli_split_file_gives_python_csv_documents(tmp_path, dialect, layout, fields, seed):
    """A multi-KB generated file through `finetune-etl prepare --range-bytes 1024 --dialect ...`: documents
    are Python csv's records (by source row), the rest are dead letters, and the manifest reconciles."""
    text = write_table(generated_rows(seed, 400, fields), dialect)
    assert len(text.encode()) > 8 * 1024
    out = run_prepare(tmp_path, text.encode(), "--layout", layout, "--dialect", dialect, "--range-bytes", "1024",
                      "--modalities", ",".join(["text"] * (1 if layout == "labeled" else fields)))
    records = python_csv_records(text, dialect)
    expected, expected_dead = expected_documents(records, layout, fields)
    table = pipelines.load_table(str(out), columns=["source_row", "text", "label"]).to_pydict()
    assert collections.Counter(zip(table["source_row"], table["text"], table["label"])) == expected
    assert len(dead_letters(out)) == expected_dead
    c = assert_reconciled(out)
    assert c["rows_read"] == len(records)


def record_sizes(text: str, dialect: str) -> dict[int, int]:
    """{line where each non-empty record starts: its size in bytes, its last line end excluded}, by Python's csv."""
    lines = text.removeprefix("\ufeff").encode().splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), dialect=dialect)
    sizes, line_before = {}, 0
    for record in reader:
        if record:
            span = lines[line_before:reader.line_num]
            sizes[line_before + 1] = len(b"".join(span)) - (len(span[-1]) - len(span[-1].rstrip(b"\r\n")))
        line_before = reader.line_num
    return sizes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(CELL, min_size=2, max_size=2), min_size=1, max_size=12),
       dialect=st.sampled_from(DIALECTS), limit=st.integers(1, 40), range_bytes=st.integers(1, 48),
       python_csv=st.booleans())
def test_records_over_the_limit_are_dead_letters_and_the_rest_is_read(rows, dialect, limit, range_bytes, python_csv):
    """With any --max-record-bytes, each record longer than it (by Python csv's record boundaries) is one
    record_too_large dead letter at its line, and every other record is read as without a limit, on the
    pyarrow path in ranges of any size and on the Python csv path."""
    text = write_table(rows, dialect)
    sizes = record_sizes(text, dialect)
    records = [(line, fields) for line, fields in python_csv_records(text, dialect) if sizes[line] <= limit]
    expected, expected_dead = expected_documents(records, "labeled", 2)
    docs, dead, rows_read, _ = prepare_below_beam(text.encode(), dialect, 2, "labeled", range_bytes, 3,
                                                  max_record_bytes=limit, python_csv=python_csv)
    assert docs == expected
    too_large = sorted(d.source_row for d in dead if d.reason_class == "record_too_large")
    assert too_large == sorted(line for line, size in sizes.items() if size > limit)
    assert len(dead) == expected_dead + len(too_large)
    assert rows_read == len(sizes)


def long_record_file(stray_quote: bool) -> tuple[str, int, int]:
    """A labeled CSV of short rows (some over two lines) around one 5 KB record over three lines; with a
    stray quote (`say "hi"`, read literally by Python's csv) the file needs the Python csv path.
    -> (text, line where the long record starts, its size in bytes)."""
    rows = [[f"row {i}" + ("\nsecond line" if i % 4 == 0 else ""), f"label {i % 3}"] for i in range(40)]
    long_record = ["long\n" + "x" * 5000 + "\nrecord", "label long"]
    text = write_table(rows[:20], "excel") + write_table([long_record], "excel") + write_table(rows[20:], "excel")
    if stray_quote:
        text += 'say "hi",label 0\n'
    line = write_table(rows[:20], "excel").count("\n") + 1
    return text, line, len(write_table([long_record], "excel").encode().rstrip(b"\r\n"))


@pytest.mark.parametrize("stray_quote", [False, True], ids=["pyarrow", "python-csv"])
@pytest.mark.parametrize("range_bytes", [1 << 20, 1024], ids=["whole", "ranges"])
def test_a_long_record_is_one_dead_letter_with_a_prefix_and_its_neighbours_are_read(stray_quote, range_bytes):
    """A 5 KB record with --max-record-bytes 2048: one record_too_large dead letter at its first line whose
    reason gives its size, lines, the limit and the flag, and whose raw is only a prefix; every other row
    is a document on its own line."""
    text, line, size = long_record_file(stray_quote)
    records = python_csv_records(text)
    expected, _ = expected_documents([r for r in records if r[0] != line], "labeled", 2)
    docs, dead, rows_read, ranges = prepare_below_beam(text.encode(), "excel", 2, "labeled", range_bytes, 16,
                                                       max_record_bytes=2048)
    assert (len(ranges) > 1) == (range_bytes == 1024 and not stray_quote)  # the path the parametrization names
    assert docs == expected and len(docs) == 40 + stray_quote
    assert [(d.source_row, d.reason_class) for d in dead] == [(line, "record_too_large")]
    assert f"record is {size:,} bytes over 3 lines, over the limit of 2,048 bytes (--max-record-bytes)" in dead[0].reason
    assert "quote" in dead[0].reason
    assert dead[0].raw == ('"long\n' + "x" * 5000)[:RAW_PREFIX_BYTES]
    assert rows_read == len(records)
