"""A CSV record longer than --max-record-bytes, through the real command line: it is one record_too_large
dead letter that says why and keeps only a prefix of the record, the file's other rows are documents, and
the manifest reconciles. The record is well quoted (the file is cut into ranges and read by pyarrow), or its
quote is never closed, so that it runs to the end of the file (read whole by Python's csv)."""
import subprocess
import sys

import pytest
from conftest import ROOT, assert_reconciled, dead_letters, write_csv

import pipelines

ROWS = 200
LONG_LINE = ROWS // 2 + 2  # the long record's first line: after the header and half the rows


def long_record_csv(closed: bool) -> str:
    rows = [f"question {i},label {i % 5}\n" for i in range(ROWS)]
    long_record = '"' + "a very long text " * 600 + ('",long label\n' if closed else ",long label\n")
    return "text,label\n" + "".join(rows[:ROWS // 2]) + long_record + "".join(rows[ROWS // 2:])


@pytest.mark.parametrize("closed", [True, False], ids=["quoted", "quote-never-closed"])
def test_a_record_over_the_limit_is_one_dead_letter_and_the_rest_is_read(tmp_path, closed):
    source = write_csv(tmp_path, long_record_csv(closed))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "pipelines.prepare", "--input", str(source), "--is-labeled",
                          "--output", str(out), "--header", "--max-record-bytes", "4K", "--range-bytes", "2048"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    documents = pipelines.load_table(str(out), columns=["text"]).column("text").to_pylist()
    # With its quote never closed, the record holds every line after it: only the rows before it are left.
    assert sorted(documents) == sorted(f"question {i}" for i in range(ROWS if closed else ROWS // 2))
    [letter] = dead_letters(out)
    assert (letter["source_row"], letter["reason_class"]) == (LONG_LINE, "record_too_large")
    lines = "" if closed else f" over {ROWS // 2 + 1} lines"
    assert f"bytes{lines}, over the limit of 4,096 bytes (--max-record-bytes)" in letter["reason"]
    assert "quote" in letter["reason"]
    assert letter["raw"] == '"' + ("a very long text " * 12)[:199]
    c = assert_reconciled(out)
    assert c["rows_read"] == len(documents) + 1 and c["dead_letters.read.record_too_large"] == 1
