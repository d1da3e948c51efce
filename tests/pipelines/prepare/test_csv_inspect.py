"""CSV dialects (excel, excel-tab, unix, sniffed), encodings and --header."""
import csv
import io

import pytest
from conftest import (
    assert_reconciled,
    dead_letters,
    documents,
    run_prepare,
    sorted_docs,
)

# Text and label; values with the delimiters, quotes and line breaks that force quoting in some dialect.
TABLE = [
    ["plain text", "label a"],
    ["has, a comma", "label a"],
    ['has "quotes" inside', "label b"],
    ["has an embedded\nnewline", "label b"],
    ["a tab\tinside", "label c"],
    ['"starts with a quote', "label c"],
    ["ends with a comma,", "label d"],
]
EXPECTED = sorted_docs((label, None, "text", text, None, None) for text, label in TABLE)


def written(dialect: str, rows=TABLE) -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf, dialect=dialect).writerows(rows)
    return buf.getvalue()


def test_written_dialects_really_differ():
    """The three files differ in delimiter, line end and quoting (so the tests below test something)."""
    excel, tab, unix = written("excel"), written("excel-tab"), written("unix")
    assert "\r\n" in excel and "\t" in tab and "\r\n" not in unix and unix.startswith('"plain text"')
    assert len({excel, tab, unix}) == 3


@pytest.mark.parametrize("dialect", ["excel", "excel-tab", "unix"])
def test_named_dialect_reads_the_table(tmp_path, dialect):
    """A file written by csv.writer in a dialect, read with --dialect of the same name: the table's rows."""
    out = run_prepare(tmp_path, written(dialect), "--is-labeled", "--dialect", dialect)
    assert documents(out) == EXPECTED
    assert dead_letters(out) == []


@pytest.mark.parametrize("dialect", ["excel", "excel-tab", "unix"])
def test_sniffed_dialect_reads_the_table(tmp_path, dialect):
    """The same files read with --dialect auto: identical documents."""
    out = run_prepare(tmp_path, written(dialect), "--is-labeled", "--dialect", "auto")
    assert documents(out) == EXPECTED
    assert dead_letters(out) == []


def test_latin1_file_with_encoding_option(tmp_path):
    """A latin-1 file with accents read with --encoding latin-1 gives the right text."""
    rows = [["Crème brûlée", "dessert"], ["Pâté en croûte", "entrée"], ["Ñandú über alles", "animal"]]
    data = "".join(f"{a},{b}\n" for a, b in rows).encode("latin-1")
    out = run_prepare(tmp_path, data, "--is-labeled", "--encoding", "latin-1")
    assert documents(out) == sorted_docs((b, None, "text", a, None, None) for a, b in rows)
    assert dead_letters(out) == []


def test_invalid_utf8_byte_is_dead_letter_for_that_row_only(tmp_path):
    """One invalid byte in row 2 of a UTF-8 file: that row is an 'encoding' dead letter, the rest are documents."""
    data = b"caf\xc3\xa9,drink\nbad \xff byte,drink\nna\xc3\xafve,word\nplain,word\n"
    out = run_prepare(tmp_path, data, "--is-labeled")
    assert documents(out) == sorted_docs([
        ("drink", None, "text", "café", None, None),
        ("word", None, "text", "naïve", None, None),
        ("word", None, "text", "plain", None, None),
    ])
    dead = dead_letters(out)
    assert [(d["source_row"], d["reason_class"], d["stage"]) for d in dead] == [(2, "encoding", "read")]
    assert dead[0]["reason"]
    assert_reconciled(out)


def test_invalid_utf8_byte_in_file_read_by_python_csv(tmp_path):
    """The same with a stray quote elsewhere (the file is read by the exact, slow path): still one
    'encoding' dead letter for row 3 only."""
    data = b'say "hi" there,greeting\ncaf\xc3\xa9,drink\nbad \xff byte,drink\nplain,word\n'
    out = run_prepare(tmp_path, data, "--is-labeled")
    assert documents(out) == sorted_docs([
        ("greeting", None, "text", 'say "hi" there', None, None),
        ("drink", None, "text", "café", None, None),
        ("word", None, "text", "plain", None, None),
    ])
    assert [(d["source_row"], d["reason_class"]) for d in dead_letters(out)] == [(3, "encoding")]
    assert_reconciled(out)


def test_header_option_skips_first_row(tmp_path):
    """--header: the first row is not a document, and the manifest counts one header row."""
    out = run_prepare(tmp_path, "text,label\nHello,greeting\nBye,farewell\n", "--is-labeled", "--header")
    assert documents(out) == sorted_docs([
        ("greeting", None, "text", "Hello", None, None),
        ("farewell", None, "text", "Bye", None, None),
    ])
    c = assert_reconciled(out)
    assert c.get("header_rows") == 1
    assert c["rows_read"] == 2


def test_header_option_skips_only_the_first_row_of_a_split_file(tmp_path):
    """--header on a file cut into byte ranges: only the file's first row is skipped."""
    rows = [[f"sentence number {i}", f"label {i % 3}"] for i in range(400)]
    text = "text,label\n" + "".join(f"{a},{b}\n" for a, b in rows)
    out = run_prepare(tmp_path, text, "--is-labeled", "--header", "--range-bytes", "1024")
    assert documents(out) == sorted_docs((b, None, "text", a, None, None) for a, b in rows)
    c = assert_reconciled(out)
    assert c.get("header_rows") == 1
    assert c["rows_read"] == 400


def test_utf8_bom_is_not_part_of_the_first_value(tmp_path):
    """A UTF-8 file with a byte-order mark (Excel's "CSV UTF-8"): the first text has no BOM."""
    out = run_prepare(tmp_path, "\ufeffHello,greeting\nBye,farewell\n".encode("utf-8"), "--is-labeled")
    assert documents(out) == sorted_docs([
        ("greeting", None, "text", "Hello", None, None),
        ("farewell", None, "text", "Bye", None, None),
    ])


def test_header_only_file_gives_an_empty_dataset(tmp_path):
    """A labeled file that holds only its header row, read with --header: no documents, one header row
    (the file has two columns; it is not a configuration error)."""
    out = run_prepare(tmp_path, "text,label\n", "--is-labeled", "--header")
    assert documents(out) == []
    c = assert_reconciled(out)
    assert c.get("header_rows") == 1


def test_header_option_skips_the_first_row_of_every_file(tmp_path):
    """--header with a glob of two files: each file's header is skipped (header_rows == 2)."""
    (tmp_path / "a.csv").write_text("text,label\nHello,greeting\n")
    (tmp_path / "b.csv").write_text("text,label\nBye,farewell\nCiao,farewell\n")
    out = run_prepare(tmp_path, tmp_path / "*.csv", "--is-labeled", "--header")
    assert documents(out) == sorted_docs([
        ("greeting", None, "text", "Hello", None, None),
        ("farewell", None, "text", "Bye", None, None),
        ("farewell", None, "text", "Ciao", None, None),
    ])
    c = assert_reconciled(out)
    assert c.get("header_rows") == 2 and c["files_read"] == 2
