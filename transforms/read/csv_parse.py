"""Parse one byte range of a CSV file into Arrow row batches and dead letters (pure functions, no Beam).

Rows come out as RecordBatches with string columns f0..f{k-1}, `source_file` and `source_row` (the
1-based line where the record starts). A record with the wrong number of fields, bytes that are not
valid in the file's encoding, a NUL byte or a quote left open at the end of the file becomes a dead
letter; every other record becomes exactly one row. A compressed file is one dead letter. A record
longer than `max_record_bytes` is a dead letter that no parser sees: it keeps only a short prefix.
"""
import codecs
import csv
import io
import re
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from schemas.documents import DeadLetter
from schemas.inputs import ByteRange, Dialect
from transforms.read.csv_scan import (NEWLINE, RETURN, UTF8_BOM, Records, compression_of, line_ends, positions_of,
                                      scan_records)

STAGE = "read"
RAW_PREFIX_BYTES = 200  # what a record_too_large dead letter keeps of the record
TYPOGRAPHIC_QUOTES = "\u201c\u201d\u201e\u2018\u2019\u00ab\u00bb"
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


def too_large_reason(size: int, lines: int, limit: int) -> str:
    """A sentence saying why a record of `size` bytes over `lines` physical lines was not read, and what to do."""
    span = f" over {lines:,} lines" if lines > 1 else ""
    return (f"record is {size:,} bytes{span}, over the limit of {limit:,} bytes (--max-record-bytes); often a quote "
            "opened and never closed runs on through the lines after it: close the quote, or raise --max-record-bytes "
            f"if records this long are expected (raw holds only its first {RAW_PREFIX_BYTES} bytes)")


def parse_range(buf: bytes, rng: ByteRange, batch_rows: int,
                max_record_bytes: int) -> tuple[list[pa.RecordBatch], list[DeadLetter], int]:
    """Bytes of `rng` -> (row batches, dead letters, header records skipped); records longer than
    `max_record_bytes` bytes are record_too_large dead letters."""
    file = rng.file
    compression = compression_of(buf) if rng.start == 0 else None
    if compression:
        return [], [_dead_letter(rng, 1, "compressed", compressed_reason(compression), repr(buf[:40]))], 0
    if rng.start == 0 and buf.startswith(UTF8_BOM) and codecs.lookup(file.encoding).name.startswith("utf-8"):
        buf = buf[len(UTF8_BOM):]
    if not rng.python_csv and ascii_compatible(file.encoding):
        records = scan_records(buf, file.dialect.delimiter)
        if records is not None and not (records.has_quotes and file.dialect.skipinitialspace):
            parsed = _parse_with_pyarrow(buf, records, rng, batch_rows, max_record_bytes)
            if parsed is not None:
                return parsed
    return _parse_with_python_csv(buf, rng, batch_rows, max_record_bytes)


def _dead_letter(rng: ByteRange, line: int, reason_class: str, reason: str, raw: str) -> DeadLetter:
    return DeadLetter(rng.file.url, line, STAGE, reason_class, reason, raw)


def _too_large(rng: ByteRange, line: int, size: int, lines: int, limit: int, prefix: bytes, encoding: str) -> DeadLetter:
    """The record_too_large dead letter of a record starting with `prefix` (its raw: that prefix, decoded)."""
    raw = codecs.getincrementaldecoder(encoding)(errors="replace").decode(prefix[:RAW_PREFIX_BYTES])
    return _dead_letter(rng, line, "record_too_large", too_large_reason(size, lines, limit), raw)


def _parse_with_pyarrow(buf: bytes, records: Records, rng: ByteRange, batch_rows: int, max_record_bytes: int):
    """Fast path: numbered records from the scan, values parsed by pyarrow. None if the two disagree."""
    file = rng.file
    lines = records.line_index + rng.first_line
    keep = records.ends - records.starts <= max_record_bytes
    dead = [_too_large(rng, int(lines[i]), int(records.ends[i] - records.starts[i]),
                       int(records.last_line[i] - records.line_index[i]) + 1, max_record_bytes,
                       buf[records.starts[i]:records.starts[i] + RAW_PREFIX_BYTES], file.encoding)
            for i in np.flatnonzero(~keep)]
    header = 0
    if rng.start == 0 and file.header and len(records) and keep[0]:
        keep[0] = False
        header = 1
    bad_fields = np.flatnonzero(keep & (records.fields != file.expected_fields))
    is_utf8 = codecs.lookup(file.encoding).name == "utf-8"
    for i in _undecodable(buf, records, keep, file.encoding):
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
    body = buf if good.size == len(records) else _join_records(buf, records, keep)
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
    zeros = positions_of(np.frombuffer(buf, dtype=np.uint8), 0)
    if not zeros.size:
        return zeros
    index = np.searchsorted(records.starts, zeros, side="right") - 1
    index = np.unique(index[(index >= 0) & (zeros < records.ends[np.maximum(index, 0)])])
    return index[keep[index]]


def _decodes(data, encoding: str) -> bool:
    """Whether bytes (or a memoryview) are valid `encoding`."""
    try:
        str(data, encoding)
        return True
    except UnicodeDecodeError:
        return False


def _kept_runs(keep: np.ndarray) -> list[np.ndarray]:
    """Indices of the kept records, in runs of neighbours."""
    kept = np.flatnonzero(keep)
    return np.split(kept, np.flatnonzero(np.diff(kept) != 1) + 1) if kept.size else []


def _undecodable(buf: bytes, records: Records, keep: np.ndarray, encoding: str) -> list[int]:
    """Indices of kept records whose bytes are not valid `encoding`. Each run of kept neighbours is decoded
    as one piece, and record by record only when that fails; records not kept are never decoded."""
    view = memoryview(buf)
    bad = []
    for run in _kept_runs(keep):
        if not _decodes(view[records.starts[run[0]]:records.ends[run[-1]]], encoding):
            bad += [i for i in run if not _decodes(view[records.starts[i]:records.ends[i]], encoding)]
    return bad


def _join_records(buf: bytes, records: Records, keep: np.ndarray) -> bytes:
    """The kept records of `buf`, each followed by a newline; runs of neighbours are copied as one slice."""
    pieces = [buf[records.starts[run[0]]:records.ends[run[-1]]] for run in _kept_runs(keep)]
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


def _parse_with_python_csv(buf: bytes, rng: ByteRange, batch_rows: int, max_record_bytes: int):
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

    csv.field_size_limit(max(csv.field_size_limit(), max_record_bytes))  # the feed refuses longer records first
    lines = _LineFeed(buf, file.encoding, max_record_bytes)
    reader = csv.reader(lines, **file.dialect.csv_kwargs())
    while True:
        first = lines.start_record()
        start = rng.first_line + first
        try:
            record = next(reader)
        except StopIteration:
            break
        except _RecordTooLarge:
            size, count = lines.skip_record(file.dialect)
            dead.append(_too_large(rng, start, size, count, max_record_bytes, lines.prefix(first), lines.encoding))
            continue
        except csv.Error as exc:
            dead.append(_dead_letter(rng, start, "quote", f"row cannot be parsed as CSV ({exc})", lines.text(first, first + 1)))
            continue
        if not record:
            continue
        if rng.start == 0 and file.header and not header and not rows and not dead and not batches:
            header = 1
            continue
        raw = lines.text(first, lines.position)
        if lines.bad:
            dead.append(_dead_letter(rng, start, "encoding",
                                     f"row has bytes that are not valid {file.encoding}; pass --encoding with the file's encoding", raw))
        elif lines.position == lines.count and _quote_left_open(lines.decoded(first, lines.position), file.dialect):
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


class _RecordTooLarge(Exception):
    """Raised by a _LineFeed instead of the line that would make the current record too long."""


class _LineFeed:
    """The physical lines of a range, handed to csv.reader one at a time and decoded only then, so one bad
    byte spoils only its line and a record too long for `max_record_bytes` is never decoded whole.

    The lines are those of the range's bytes (ASCII-compatible encodings) or of its text re-encoded as
    UTF-8 (UTF-16 or -32), and record sizes count those bytes, each record's last line end excluded.
    """

    def __init__(self, buf: bytes, encoding: str, max_record_bytes: int):
        self.transcoded = not ascii_compatible(encoding)
        if self.transcoded:  # a line holding U+FFFD then had bytes the encoding does not hold
            buf, encoding = buf.decode(encoding, errors="replace").encode("utf-8"), "utf-8"
        self.buf, self.encoding, self.limit = buf, encoding, max_record_bytes
        a = np.frombuffer(buf, dtype=np.uint8)
        breaks = line_ends(a)
        crlf = (breaks > 0) & (a[breaks] == NEWLINE) & (a[np.maximum(breaks - 1, 0)] == RETURN)
        starts = np.concatenate(([0], breaks + 1))  # of each line
        ends = np.concatenate((breaks - crlf, [a.size]))  # of each line's text, before its line end
        nexts = np.concatenate((breaks + 1, [a.size]))  # after each line's line end
        self.count = len(starts) - int(starts[-1] == a.size)  # no line after a line end that ends the buffer
        # memoryviews of int64 arrays: compact, and indexed as fast as lists of ints
        self.starts, self.ends, self.nexts = (memoryview(x[:self.count]) for x in (starts, ends, nexts))
        self.position = self.record_start = 0
        self.bad = False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        """The next line, decoded; raises _RecordTooLarge instead if it would make the record too long."""
        k = self.position
        if k == self.count:
            raise StopIteration
        if self.ends[k] - self.starts[self.record_start] > self.limit:
            raise _RecordTooLarge
        self.position += 1
        line = self.buf[self.starts[k]:self.nexts[k]]
        try:
            text = line.decode(self.encoding)
        except UnicodeDecodeError:
            text, self.bad = line.decode(self.encoding, errors="replace"), True
        if self.transcoded and "\ufffd" in text:
            self.bad = True
        return text

    def start_record(self) -> int:
        """Start a record at the next line -> its 0-based line index."""
        self.record_start, self.bad = self.position, False
        return self.position

    def skip_record(self, dialect: Dialect) -> tuple[int, int]:
        """Move past the current record, finding its end as Python's csv would, without decoding it ->
        (its size in bytes, its number of lines)."""
        opens, stays_open = _open_quote_patterns(dialect)
        k = self.record_start
        quoted = opens.fullmatch(self.buf, self.starts[k], self.ends[k])
        while quoted and k + 1 < self.count:
            k += 1
            quoted = stays_open.fullmatch(self.buf, self.starts[k], self.ends[k])
        self.position = k + 1
        return int(self.ends[k] - self.starts[self.record_start]), k + 1 - self.record_start

    def prefix(self, line: int) -> bytes:
        """The first RAW_PREFIX_BYTES bytes from the start of a line."""
        return self.buf[self.starts[line]:self.starts[line] + RAW_PREFIX_BYTES]

    def decoded(self, first: int, end: int) -> list[str]:
        """Lines [first, end), each decoded with its line end."""
        return [self.buf[self.starts[k]:self.nexts[k]].decode(self.encoding, errors="replace") for k in range(first, end)]

    def text(self, first: int, end: int) -> str:
        """Lines [first, end) as one text, without the last line end."""
        return self.buf[self.starts[first]:self.nexts[end - 1]].decode(self.encoding, errors="replace").rstrip("\r\n")


def _open_quote_patterns(dialect: Dialect) -> tuple[re.Pattern, re.Pattern]:
    """Byte patterns that fully match one line's text (an ASCII-compatible encoding, its line end excluded)
    when Python's lenient csv ends that line inside a quoted field, so the record goes on: one for a line
    that starts a record, one for a line that starts inside a quoted field."""
    d, q = re.escape(dialect.delimiter.encode()), re.escape(dialect.quotechar.encode())
    inside = rb"(?:[^%b]++|%b%b)*+" % (q, q, q)  # a quoted field's value: no quote, or quotes doubled
    spaces = rb" *+" if dialect.skipinitialspace else b""
    # A whole field: quoted (anything after the closing quote is kept as is, up to the delimiter), or not.
    field = rb"%b(?:%b%b%b[^%b]*+|[^%b%b][^%b]*+)?" % (spaces, q, inside, q, d, q, d, d)
    ends_open = rb"(?:%b%b)*+%b%b%b" % (field, d, spaces, q, inside)
    return re.compile(ends_open), re.compile(rb"%b(?:%b[^%b]*+%b%b)?" % (inside, q, d, d, ends_open))
