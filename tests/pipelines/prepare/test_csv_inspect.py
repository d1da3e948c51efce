"""CSV dialects (excel, excel-tab, unix, sniffed), encodings, --header and its detection, and the layout
a file's columns imply."""
import csv
import io

import pytest
from conftest import (
    ROOT,
    assert_reconciled,
    dead_letters,
    documents,
    run_prepare,
    sorted_docs,
)

from pipelines.prepare.csv_inspect import detect_header, labeled_or_pairs, numbered_records, sample_records
from pipelines.prepare.inputs import plan_inputs
from schemas.inputs import Dialect
from schemas.options import CSVOptions

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


# Header detection (--header auto) -----------------------------------------------------------------------


def records(text: str) -> list[list[str]]:
    return sample_records(text, Dialect(",", skipinitialspace=True))


NUMBERED_ROWS = "".join(f"sentence {i},{i / 10}\n" for i in range(10))


@pytest.mark.parametrize("text, why", [
    ("query,document\nRice dishes,Chicken curry\n", "its cells are column names"),
    ("Text, Label\nHello!, greeting-english\n", "its cells are column names"),
    ("sentence1,sentence2,similarity_score\nA,B,0.5\n", "its cells are column names"),
    ("image_url,caption\ncat.jpg,A cat.\n", "its cells are column names"),
    ("text\n", "its cells are column names"),
    ("first,second,how close\nx,y,0.5\nz,w,1\n", "column 3 holds numbers in the rows below, and 'how close' here"),
    ("photo of,says\nimages/a.jpg,a cat\nhttps://x.org/b.png?s=1,a dog\n",
     "column 1 holds image URIs in the rows below, and 'photo of' here"),
    ("shape,what\ncube.off,cube\nball.obj,ball\n", "column 1 holds mesh URIs in the rows below, and 'shape' here"),
    ("words,weight of it\n" + NUMBERED_ROWS + "no weight,x\n",
     "column 2 holds numbers in the rows below, and 'weight of it' here"),  # 10 of 11 below are numbers
])
def test_a_first_row_of_names_or_of_another_kind_is_a_header(text, why):
    assert detect_header(records(text), "auto") == (True, why)


@pytest.mark.parametrize("text", [
    "Hello!, greeting-english\nHi there., greeting-english\n",
    "Rice dishes, Chicken curry\nRice dishes, Ristto\n",
    "The weather is nice, The weather is beautiful, 0.9\nThe weather is nice, The weather is bad, 0\n",
    "images/a.jpg, a cat\nimages/b.jpg, a dog\n",
    "A cat., cat.jpg\nA dog., dog.jpg\n",
    "Why?,123279\nHow?,123279\n",
    "Hello,greeting\n",
    ",label\n1,a\n2,b\n",
    "query 0,document 0\nquery 1,document 1\n",  # values that start with column-name words
    "sentence 3,label 3\nsentence 4,label 4\n",
    "caf\ufffd au lait, drinks\nimages/a.jpg, things\nimages/b.jpg, things\n",  # undecodable: a bad row, not names
    "first,weight of it\n" + "".join(f"w{i},{i}\n" for i in range(8)) + "a,b\nc,d\n",  # 8 of 10 numbers
    "",
])
def test_a_first_row_like_the_rows_below_is_data(text):
    header, why = detect_header(records(text), "auto")
    assert header is False, why


def test_a_given_header_option_is_not_second_guessed():
    assert detect_header(records("query,document\na,b\n"), "no") == (False, "--header no")
    assert detect_header(records("Hello,greeting\nBye,farewell\n"), "yes") == (True, "--header yes")


def test_numbered_records_give_each_records_first_line_and_the_characters_they_span():
    text = 'a,b\r\n\n"x\ny",c\nd,e\n'
    assert numbered_records(text, Dialect(",")) == ([(1, ["a", "b"]), (3, ["x\ny", "c"]), (5, ["d", "e"])], len(text))
    assert numbered_records(text, Dialect(","), limit=2) == ([(1, ["a", "b"]), (3, ["x\ny", "c"])], len(text) - 4)


# Labeled or pairs (two columns, --layout auto) ----------------------------------------------------------


@pytest.mark.parametrize("text, layout, firm, why", [
    ("Hello!, greeting\nHi., greeting\nSorry!, apology\nOops., apology\n", "labeled", True,
     "column 2 repeats like labels (4 distinct values in column 1 and 2 in column 2, of 4 rows)"),
    ("Rice, Curry\nRice, Risotto\nPasta, Spaghetti\n", "pairs", True,
     "column 1 repeats like queries (2 distinct values in column 1 and 3 in column 2, of 3 rows)"),
    ("Hello!, greeting\nBye., farewell\n", "pairs", False,
     "neither column repeats enough to tell (2 distinct values in column 1 and 2 in column 2, of 2 rows), "
     "so Finetuner's default"),
    ("a, x\nb, x\nc, y\nd, z\n", "pairs", False,  # 3 labels in 4 rows: more than 2/3
     "neither column repeats enough to tell (4 distinct values in column 1 and 3 in column 2, of 4 rows), "
     "so Finetuner's default"),
    ("A cat., cat.jpg\nA cat., cat2.jpg\n", "pairs", True, "column 2 holds image URIs, which are not labels"),
])
def test_two_columns_are_labeled_when_the_second_repeats_like_labels(text, layout, firm, why):
    choice = labeled_or_pairs(records(text))
    assert (choice.layout, choice.firm, choice.why) == (layout, firm, why)


# Finetuner's examples keep their reading ---------------------------------------------------------------


@pytest.mark.parametrize("example, layout, modalities", [
    ("seed-labeled.csv", "labeled", ("text",)),
    ("quora-labeled.csv", "labeled", ("text",)),
    ("seed-pairs.csv", "pairs", ("text", "text")),
    ("seed-scores.csv", "scores", ("text", "text")),
    ("seed-clip.csv", "pairs", ("text", "image")),
    ("clip.csv", "pairs", ("text", "image")),
    ("labeled-images.csv", "labeled", ("image",)),
    ("labeled-meshes.csv", "labeled", ("mesh",)),
])
def test_every_example_has_no_header_and_the_layout_its_name_says(example, layout, modalities):
    plan = plan_inputs([str(ROOT / "examples" / example)], CSVOptions())
    assert [f.header for f in plan.files] == [False]
    assert (plan.layout, plan.modalities) == (layout, modalities)
    as_values = plan_inputs([str(ROOT / "examples" / example)], CSVOptions(layout="values"))
    assert [f.header for f in as_values.files] == [False]
