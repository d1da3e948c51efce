"""Find CSV records in raw bytes with vectorized numpy, without parsing field values.

Used to cut large files into byte ranges that start at a record boundary, and to number and count the
fields of each record so that rows with the wrong field count become dead letters before pyarrow parses.

The scan trusts quote parity (the n-th `"` opens a field when n is even) only when every quote in the
bytes is where CSV allows it: an opening quote right after a delimiter, a line end, another quote or the
start, and a closing quote right before one of those or the end. Then parity is exactly Python's csv
state, so a line end outside quotes is a record boundary. Otherwise the caller falls back to Python's csv.
"""
import dataclasses
import re
from typing import Iterable, Iterator, Optional

import numpy as np

UTF8_BOM = b"\xef\xbb\xbf"
BLOCK_BYTES = 16 * 1024 * 1024

NEWLINE, RETURN, QUOTE = 10, 13, 34
COMPRESSED_MAGIC = {"gzip": rb"\x1f\x8b", "bzip2": rb"BZh[1-9]1AY&SY", "xz": rb"\xfd7zXZ\x00",
                    "zstd": rb"\x28\xb5\x2f\xfd", "zip": rb"PK\x03\x04"}


def compression_of(head: bytes) -> Optional[str]:
    """The compression format whose magic bytes start `head` (gzip, bzip2, xz, zstd, zip), or None."""
    return next((name for name, magic in COMPRESSED_MAGIC.items() if re.match(magic, head)), None)


@dataclasses.dataclass
class Records:
    """Non-empty records of a buffer: byte spans (start inclusive, end exclusive, line end excluded),
    the 0-based line index where each starts and where it ends, and its number of fields; all arrays of
    shape (n,)."""

    starts: np.ndarray
    ends: np.ndarray
    line_index: np.ndarray
    last_line: np.ndarray
    fields: np.ndarray
    multiline: bool
    has_quotes: bool

    def __len__(self) -> int:
        return len(self.starts)


def positions_of(a: np.ndarray, byte: int, block: int = BLOCK_BYTES) -> np.ndarray:
    """Positions (m,) int64 where `a` holds `byte`, compared `block` bytes at a time so that no temporary
    array is as large as `a` (a range may hold one record of hundreds of MiB)."""
    found = [np.flatnonzero(a[i:i + block] == byte) + i for i in range(0, a.size, block)]
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def line_ends(a: np.ndarray, next_byte: Optional[int] = None) -> np.ndarray:
    """Positions (m,) int64 of line ends in `a`: every `\\n`, and every `\\r` not followed by `\\n`.

    next_byte: the byte after `a` (None at the end of the file), to judge a `\\r` in the last position.
    """
    nl = positions_of(a, NEWLINE)
    cr = positions_of(a, RETURN)
    if not cr.size:
        return nl
    following = np.empty(cr.size, dtype=np.int64)
    inside = cr + 1 < a.size
    following[inside] = a[cr[inside] + 1]
    following[~inside] = -1 if next_byte is None else next_byte
    return np.union1d(nl, cr[following != NEWLINE])


def quotes_well_formed(
    a: np.ndarray, quotes: np.ndarray, parity0: int, delimiter: int,
    prev_byte: Optional[int] = None, next_byte: Optional[int] = None,
) -> bool:
    """Whether every quote at `quotes` (positions in `a`) sits where an opening or closing quote may.

    parity0: number of quotes before `a` modulo 2; prev_byte / next_byte: the bytes around `a`, None at
    the start / end of the file. Does not check that the total count is even (the caller does, at the end).
    """
    if not quotes.size:
        return True
    allowed = np.zeros(257, dtype=bool)  # index 256 stands for the start or end of the file
    allowed[[delimiter, NEWLINE, RETURN, QUOTE, 256]] = True
    before = a[np.maximum(quotes - 1, 0)].astype(np.int16)
    before[quotes == 0] = 256 if prev_byte is None else prev_byte
    after = a[np.minimum(quotes + 1, a.size - 1)].astype(np.int16)
    after[quotes + 1 >= a.size] = 256 if next_byte is None else next_byte
    opening = (np.arange(quotes.size) + parity0) % 2 == 0
    return bool(allowed[before[opening]].all() and allowed[after[~opening]].all())


def outside_quotes(quotes: np.ndarray, parity0: int, positions: np.ndarray) -> np.ndarray:
    """Boolean mask (len(positions),): True where a position is outside any quoted field."""
    if not quotes.size:
        return np.full(positions.size, parity0 % 2 == 0)
    return (np.searchsorted(quotes, positions) + parity0) % 2 == 0


def scan_records(buf: bytes, delimiter: str, quoting: bool = True) -> Optional[Records]:
    """Records of a buffer that starts at a record boundary, or None when its quotes are not well formed."""
    a = np.frombuffer(buf, dtype=np.uint8)
    delim = ord(delimiter)
    ends_of_lines = line_ends(a)
    quotes = positions_of(a, QUOTE) if quoting else np.empty(0, dtype=np.int64)
    if quotes.size % 2 or not quotes_well_formed(a, quotes, 0, delim):
        return None
    record_ends = ends_of_lines[outside_quotes(quotes, 0, ends_of_lines)]
    starts = np.concatenate(([0], record_ends + 1)).astype(np.int64)
    ends = np.concatenate((record_ends, [a.size])).astype(np.int64)
    # A `\r\n` line end: the `\r` is not content.
    crlf = (ends > starts) & (ends < a.size)
    crlf[crlf] = (a[ends[crlf]] == NEWLINE) & (a[ends[crlf] - 1] == RETURN)
    ends = ends - crlf
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    delims = positions_of(a, delim)
    delims = delims[outside_quotes(quotes, 0, delims)]
    fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
    line_index = np.searchsorted(ends_of_lines, starts)
    last_line = np.searchsorted(ends_of_lines, ends)
    multiline = bool((last_line > line_index).any())
    return Records(starts, ends, line_index, last_line, fields, multiline, bool(quotes.size))


@dataclasses.dataclass
class SplitPlan:
    """Where to cut a file: range boundaries (k+1,) and the 0-based line index at each range start (k,).
    `safe` is False when quotes are not well formed (read the file whole with Python's csv)."""

    boundaries: list
    line_index: list
    safe: bool
    has_quotes: bool


def plan_splits(chunks: Iterable[bytes], size: int, range_bytes: int, delimiter: str) -> SplitPlan:
    """Choose cut points near every `range_bytes` bytes, each just after a line end outside quotes.

    chunks: the file's bytes in order (any chunk sizes); size: the file's size in bytes.
    """
    delim = ord(delimiter)
    boundaries, line_index = [0], [0]
    target = range_bytes
    offset, parity, lines_before, has_quotes = 0, 0, 0, False
    prev_byte = first_content = None  # first_content: no cut before it, so range 0 holds the first record (a header)
    for a, next_byte in _with_next_byte(_first_chunk_holding(chunks, len(UTF8_BOM))):
        if offset == 0 and compression_of(a[:10].tobytes()):
            return SplitPlan([0, size], [0], False, False)  # not CSV: read whole, to be one dead letter
        if first_content is None:  # a byte-order mark at byte 0 is not content: the parser drops it
            lead = len(UTF8_BOM) if offset == 0 and a[:len(UTF8_BOM)].tobytes() == UTF8_BOM else 0
            content = np.flatnonzero((a[lead:] != NEWLINE) & (a[lead:] != RETURN))
            first_content = offset + lead + int(content[0]) if content.size else None
        quotes = positions_of(a, QUOTE)
        has_quotes |= bool(quotes.size)
        if not quotes_well_formed(a, quotes, parity, delim, prev_byte, next_byte):
            return SplitPlan([0, size], [0], False, True)
        ends_of_lines = line_ends(a, next_byte)
        record_ends = ends_of_lines[outside_quotes(quotes, parity, ends_of_lines)] + offset
        while target < size and first_content is not None:
            later = record_ends[record_ends >= max(target, first_content)]
            if not later.size:
                break
            cut = int(later[0]) + 1
            if cut < size:
                boundaries.append(cut)
                line_index.append(lines_before + int(np.searchsorted(ends_of_lines + offset, cut)))
            target = cut + range_bytes
        lines_before += ends_of_lines.size
        parity = (parity + quotes.size) % 2
        prev_byte = int(a[-1]) if a.size else prev_byte
        offset += a.size
    if parity:
        return SplitPlan([0, size], [0], False, True)
    boundaries.append(size)
    return SplitPlan(boundaries, line_index, True, has_quotes)


def _first_chunk_holding(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The same bytes, with the first chunk at least `size` bytes long (or the whole input if shorter)."""
    chunks = iter(chunks)
    first = b""
    for chunk in chunks:
        first += chunk
        if len(first) >= size:
            break
    if first:
        yield first
    yield from chunks


def _with_next_byte(chunks: Iterable[bytes]) -> Iterator[tuple]:
    """(chunk as uint8 array, first byte of the next chunk or None) for each non-empty chunk."""
    previous = None
    for chunk in chunks:
        if not chunk:
            continue
        if previous is not None:
            yield np.frombuffer(previous, dtype=np.uint8), chunk[0]
        previous = chunk
    if previous is not None:
        yield np.frombuffer(previous, dtype=np.uint8), None
