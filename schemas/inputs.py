"""What the launcher learned about each input file, handed to the read stage (plain data, no I/O)."""
import dataclasses
import csv


@dataclasses.dataclass(frozen=True)
class Dialect:
    """A CSV dialect as our readers need it: the delimiter and whether spaces after it are skipped.

    Quoting is always Python's and Excel's: `"` quotes a field and `""` inside it is one quote.
    """

    delimiter: str = ","
    skipinitialspace: bool = False
    quotechar: str = '"'

    def csv_kwargs(self) -> dict:
        """Keyword arguments for Python's csv.reader / csv.writer."""
        return dict(
            delimiter=self.delimiter,
            quotechar=self.quotechar,
            doublequote=True,
            skipinitialspace=self.skipinitialspace,
            quoting=csv.QUOTE_MINIMAL,
            lineterminator="\n",
            strict=False,
        )


NAMED_DIALECTS = {
    "excel": Dialect(","),
    "excel-tab": Dialect("\t"),
    "unix": Dialect(","),
}


@dataclasses.dataclass(frozen=True)
class InputFile:
    """One CSV input: its URL, size in bytes, dialect, encoding, whether its first record is a header,
    and the number of fields a record must have."""

    url: str
    size: int
    dialect: Dialect
    encoding: str
    header: bool
    expected_fields: int


@dataclasses.dataclass(frozen=True)
class ByteRange:
    """A slice [start, end) of an input file that starts at a record boundary.

    first_line: the 1-based line number of the slice's first byte.
    python_csv: parse with Python's csv module (quotes that pyarrow would read differently).
    """

    file: InputFile
    start: int
    end: int
    first_line: int = 1
    python_csv: bool = False
