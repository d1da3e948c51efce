"""schemas.inputs: Dialect.csv_kwargs read and write records as Python's csv module does for Excel."""
import csv
import io

import pytest

from schemas.inputs import NAMED_DIALECTS, Dialect


def test_csv_kwargs_round_trip_quotes_and_delimiters():
    dialect = Dialect(";")
    rows = [["a;b", 'say "hi"', ""], ["plain", "line\nbreak", "x"]]
    buffer = io.StringIO()
    csv.writer(buffer, **dialect.csv_kwargs()).writerows(rows)
    assert buffer.getvalue().startswith('"a;b";"say ""hi""";\nplain;')
    assert list(csv.reader(io.StringIO(buffer.getvalue(), newline=""), **dialect.csv_kwargs())) == rows


@pytest.mark.parametrize("skip, fields", [(False, ["a", " b", ' "c"']), (True, ["a", "b", "c"])])
def test_skipinitialspace(skip, fields):
    text = 'a, b, "c"\n'
    assert next(csv.reader(io.StringIO(text), **Dialect(",", skip).csv_kwargs())) == fields


def test_not_strict_about_stray_quotes():
    """strict=False: a quote inside an unquoted field is kept, not an error."""
    assert next(csv.reader(io.StringIO('5" screen,tv\n'), **Dialect().csv_kwargs())) == ['5" screen', "tv"]


def test_named_dialects():
    assert NAMED_DIALECTS["excel"] == NAMED_DIALECTS["unix"] == Dialect(",")
    assert NAMED_DIALECTS["excel-tab"].csv_kwargs()["delimiter"] == "\t"
    assert Dialect().csv_kwargs() == dict(delimiter=",", quotechar='"', doublequote=True, skipinitialspace=False,
                                          quoting=csv.QUOTE_MINIMAL, lineterminator="\n", strict=False)
