"""Parse one byte range of a CSV file into Arrow row batches and dead letters (pure functions, no Beam).

Rows come out as RecordBatches with string columns f0..f{k-1}, `source_file` and `source_row` (the
1-based line where the record starts). A record with the wrong number of fields, bytes that are not
valid in the file's encoding, a NUL byte or a quote left open at the end of the file becomes a dead
letter; every other record becomes exactly one row. A compressed file is one dead letter.
"""
import codecs
import csv
import io
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from schemas.documents import DeadLetter
from schemas.inputs import ByteRange, Dialect
from transforms.read.csv_scan import Records, compression_of, scan_records

STAGE = "read"
TYPOGRAPHIC_QUOTES = "\u201c\u201d\u201e\u2018\u2019\u00ab\u00bb"
UTF8_BOM = b"\xef\xbb\xbf"
NUL_REASON = ("row contains a NUL byte (\\x00), which text does not hold; the file is binary or in another "
              "encoding (UTF-16?): pass --encoding with the file's encoding")


def compressed_reason(kind: str) -> str:
    return (f"the file is {kind}-compressed, not CSV text; decompress it and pass the CSV inside "
            "(compressed inputs are not read)")


def field_names(count: int) -> list[str]:
    return [f"f{i}" for i in range(count)]


def ascii_compatible(encoding: str) -> bool:
    """True when CSV's structural characters are the same single bytes as in ASCII (not UTF-16/32)."""
    probe = ',\t"\r\n'
    try:
        return probe.encode(encoding) == probe.encode("ascii") and codecs.lookup(encoding).name not in (
            "utf-16", "utf-32", "utf-7")
    except (LookupError, UnicodeError):
        return False


def field_count_reason(found: int, expected: int, raw: str, dialect: Dialect) -> str:
    """A sentence saying why a record with the wrong number of fields was rejected, and how to fix it."""
    reason = f"row has {found} field{'s' if found != 1 else ''} but this run's rows have {expected}"
    if any(q in raw for q in TYPOGRAPHIC_QUOTES):
        return reason + (
            "; it uses typographic quotes (“ ”), which CSV does not treat as quotes: "
            'enclose fields that contain the delimiter in straight double quotes (")')
    if found > expected:
        return reason + f"; enclose fields that contain {dialect.delimiter!r} in double quotes"
    return reason


def parse_range(buf: bytes, rng: ByteRange, batch_rows: int) -> tuple[list[pa.RecordBatch], list[DeadLetter], int]:
    """Bytes of `rng` -> (row batches, dead letters, header records skipped)."""
    file = rng.file
    compression = compression_of(buf) if rng.start == 0 else None
    if compression:
        return [], [_dead_letter(rng, 1, "compressed", compressed_reason(compression), repr(buf[:40]))], 0
    if rng.start == 0 and buf.startswith(UTF8_BOM) and codecs.lookup(file.encoding).name.startswith("utf-8"):
        buf = buf[len(UTF8_BOM):]
    if not rng.python_csv and ascii_compatible(file.encoding):
        records = scan_records(buf, file.dialect.delimiter)
        if records is not None and not (records.has_quotes and file.dialect.skipinitialspace):
            parsed = _parse_with_pyarrow(buf, records, rng, batch_rows)
            if parsed is not None:
                return parsed
    return _parse_with_python_csv(buf, rng, batch_rows)


def _dead_letter(rng: ByteRange, line: int, reason_class: str, reason: str, raw: str) -> DeadLetter:
    return DeadLetter(rng.file.url, line, STAGE, reason_class, reason, raw)


def _parse_with_pyarrow(buf: bytes, records: Records, rng: ByteRange, batch_rows: int):
    """Fast path: numbered records from the scan, values parsed by pyarrow. None if the two disagree."""
    file = rng.file
    lines = records.line_index + rng.first_line
    header = 0
    keep = np.ones(len(records), dtype=bool)
    if rng.start == 0 and file.header and len(records):
        keep[0] = False
        header = 1
    dead = []
    bad_fields = np.flatnonzero(keep & (records.fields != file.expected_fields))
    is_utf8 = codecs.lookup(file.encoding).name == "utf-8"
    try:
        text = buf.decode(file.encoding)
        bad_encoding = []
    except UnicodeDecodeError:
        text = None
        bad_encoding = [i for i in np.flatnonzero(keep) if not _decodes(buf[records.starts[i]:records.ends[i]], file.encoding)]
    for i in bad_encoding:
        raw = buf[records.starts[i]:records.ends[i]].decode(file.encoding, errors="replace")
        dead.append(_dead_letter(rng, int(lines[i]), "encoding",
                                 f"row has bytes that are not valid {file.encoding}; pass --encoding with the file's encoding", raw))
        keep[i] = False
    for i in _records_with_nul(buf, records, keep):
        raw = buf[records.starts[i]:records.ends[i]].decode(file.encoding, errors="replace")
        dead.append(_dead_letter(rng, int(lines[i]), "nul_byte", NUL_REASON, raw))
        keep[i] = False
    for i in bad_fields:
        if not keep[i]:
            continue
        raw = buf[records.starts[i]:records.ends[i]].decode(file.encoding, errors="replace")
        dead.append(_dead_letter(rng, int(lines[i]), "field_count",
                                 field_count_reason(int(records.fields[i]), file.expected_fields, raw, file.dialect), raw))
        keep[i] = False
    good = np.flatnonzero(keep)
    if not good.size:
        return [], dead, header
    if good.size == len(records):
        body = text.encode("utf-8") if (not is_utf8 and text is not None) else buf
    else:
        body = _join_records(buf, records, keep)
        if not is_utf8:
            body = body.decode(file.encoding).encode("utf-8")
    table = _pyarrow_read(body, file.expected_fields, file.dialect, records.multiline)
    if table is None or table.num_rows != good.size:
        return None
    if file.dialect.skipinitialspace:
        table = pa.table([pc.utf8_ltrim(col, characters=" ") for col in table.columns], names=table.column_names)
    table = table.append_column("source_file", pa.nulls(good.size, pa.string()).fill_null(file.url))
    table = table.append_column("source_row", pa.array(lines[good], type=pa.int64()))
    return table.to_batches(max_chunksize=batch_rows), dead, header


def _records_with_nul(buf: bytes, records: Records, keep: np.ndarray) -> np.ndarray:
    """Indices (k,) of kept records that hold a NUL byte (one vectorized pass over the buffer)."""
    zeros = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 0)
    if not zeros.size:
        return zeros
    index = np.searchsorted(records.starts, zeros, side="right") - 1
    index = np.unique(index[(index >= 0) & (zeros < records.ends[np.maximum(index, 0)])])
    return index[keep[index]]


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def _join_records(buf: bytes, records: Records, keep: np.ndarray) -> bytes:
    """The kept records of `buf`, each followed by a newline; runs of neighbours are copied as one slice."""
    kept = np.flatnonzero(keep)
    run_breaks = np.flatnonzero(np.diff(kept) != 1) + 1
    pieces = []
    for run in np.split(kept, run_breaks):
        pieces.append(buf[records.starts[run[0]]:records.ends[run[-1]]])
    return b"\n".join(pieces) + b"\n"


def _pyarrow_read(body: bytes, fields: int, dialect: Dialect, multiline: bool) -> Optional[pa.Table]:
    if body.startswith(UTF8_BOM):  # pyarrow would drop it, but here it is the first character of a value
        return None
    names = field_names(fields)
    try:
        return pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 26),
            parse_options=pacsv.ParseOptions(
                delimiter=dialect.delimiter, quote_char=dialect.quotechar, double_quote=True,
                escape_char=False, newlines_in_values=multiline, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid:
        return None


def _parse_with_python_csv(buf: bytes, rng: ByteRange, batch_rows: int):
    """Slow, exact path: Python's csv module, for quotes pyarrow would read differently or non-ASCII encodings."""
    file = rng.file
    dead: list[DeadLetter] = []
    batches: list[pa.RecordBatch] = []
    columns: list[list] = [[] for _ in range(file.expected_fields)]
    rows: list[int] = []
    header = 0

    def flush():
        if rows:
            arrays = [pa.array(c, type=pa.string()) for c in columns]
            arrays += [pa.nulls(len(rows), pa.string()).fill_null(file.url), pa.array(rows, type=pa.int64())]
            batches.append(pa.RecordBatch.from_arrays(arrays, names=field_names(file.expected_fields) + ["source_file", "source_row"]))
            for c in columns:
                c.clear()
            rows.clear()

    csv.field_size_limit(max(csv.field_size_limit(), len(buf) + 1))
    lines = _DecodedLines(buf, file.encoding)
    reader = csv.reader((text for text, _ in lines.iterate()), **file.dialect.csv_kwargs())
    line_before = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start = rng.first_line + line_before
            dead.append(_dead_letter(rng, start, "quote", f"row cannot be parsed as CSV ({exc})", lines.text_since(line_before)))
            line_before = reader.line_num
            continue
        start, line_before = rng.first_line + line_before, reader.line_num
        if not record:
            continue
        if rng.start == 0 and file.header and not header and not rows and not dead and not batches:
            header = 1
            continue
        bad_lines = lines.bad_between(start - rng.first_line, line_before)
        raw = lines.text_between(start - rng.first_line, line_before)
        if bad_lines:
            dead.append(_dead_letter(rng, start, "encoding",
                                     f"row has bytes that are not valid {file.encoding}; pass --encoding with the file's encoding", raw))
        elif line_before == len(lines.lines) and _quote_left_open(lines.lines[start - rng.first_line:], file.dialect):
            dead.append(_dead_letter(rng, start, "quote", f"row opens a quoted field with {file.dialect.quotechar} that is "
                                     "never closed: it runs to the end of the file; close the quote or remove it", raw))
        elif "\x00" in raw:
            dead.append(_dead_letter(rng, start, "nul_byte", NUL_REASON, raw))
        elif len(record) != file.expected_fields:
            dead.append(_dead_letter(rng, start, "field_count",
                                     field_count_reason(len(record), file.expected_fields, raw, file.dialect), raw))
        else:
            for column, value in zip(columns, record):
                column.append(value)
            rows.append(start)
            if len(rows) >= batch_rows:
                flush()
    flush()
    return batches, dead, header


def _quote_left_open(record_lines: list[str], dialect: Dialect) -> bool:
    """Whether the last record of a file (its physical lines) ends inside a quoted field: lenient csv
    takes the rest of the file as the field's value, strict csv calls it an unexpected end of data."""
    try:
        for _ in csv.reader(record_lines, **{**dialect.csv_kwargs(), "strict": True}):
            pass
    except csv.Error as error:
        return "unexpected end of data" in str(error)
    return False


class _DecodedLines:
    """Physical lines of a buffer, each decoded on its own so one bad byte spoils only its line."""

    def __init__(self, buf: bytes, encoding: str):
        if ascii_compatible(encoding):
            raw_lines = buf.splitlines(keepends=True)
            self.lines, self.bad = [], set()
            for i, line in enumerate(raw_lines):
                try:
                    self.lines.append(line.decode(encoding))
                except UnicodeDecodeError:
                    self.lines.append(line.decode(encoding, errors="replace"))
                    self.bad.add(i)
        else:
            text = buf.decode(encoding, errors="replace")
            self.lines = list(io.StringIO(text, newline=""))
            self.bad = {i for i, line in enumerate(self.lines) if "\ufffd" in line}

    def iterate(self) -> Iterator[tuple[str, int]]:
        for i, line in enumerate(self.lines):
            yield line, i

    def bad_between(self, first: int, end: int) -> bool:
        return any(i in self.bad for i in range(first, end))

    def text_between(self, first: int, end: int) -> str:
        return "".join(self.lines[first:end]).rstrip("\r\n")

    def text_since(self, first: int) -> str:
        return self.text_between(first, first + 1)
