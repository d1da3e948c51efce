"""Look at the first bytes of CSV files and decide dialect, header, field count, layout and column modalities.

Pure functions over a file's head (bytes); the launcher calls them before the pipeline starts, so a
layout that does not fit the files is a configuration error with one sentence, not a failed job.
"""
import collections
import csv
import io
import re
from typing import NamedTuple, Optional

import pyarrow as pa

from pipelines.wording import counted
from schemas.inputs import NAMED_DIALECTS, Dialect
from schemas.options import ConfigError
from schemas import modalities as modality
from transforms.read.csv_parse import UTF8_BOM
from transforms.read.csv_scan import compression_of

SNIFF_DELIMITERS = ",\t;|"
SAMPLE_RECORDS = 1000


def sniff_dialect(sample: str) -> Dialect:
    """Guess the delimiter and whether a space follows it (Finetuner's `Hello!, greeting-english`).

    The delimiter is the candidate that splits most sampled records into the same number (> 1) of fields;
    csv.Sniffer, which Finetuner used, gives up on a sample with one odd line (like the seed page's
    `...`), so we score consistency instead. A sample no candidate splits is one column: Excel's dialect.
    """
    best, best_score = NAMED_DIALECTS["excel"], 0.0
    for delimiter in SNIFF_DELIMITERS:
        records = sample_records(sample, Dialect(delimiter))
        counts = collections.Counter(len(r) for r in records)
        if not counts:
            continue
        fields, hits = counts.most_common(1)[0]
        score = hits / len(records)
        if fields > 1 and score > best_score:
            later = [f for r in records if len(r) == fields for f in r[1:]]
            spaced = sum(f.startswith(" ") for f in later)
            best, best_score = Dialect(delimiter, spaced >= 0.9 * len(later)), score
    return best


def head_text(head: bytes, encoding: str, whole_file: bool) -> str:
    """Decode a file's first bytes, dropping a BOM and the last, maybe cut, line unless it is the whole file.
    A compressed file has no text to sample (the read stage makes it a dead letter): ''."""
    if compression_of(head):
        return ""
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM):]
    text = head.decode(encoding, errors="replace")
    if not whole_file:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[: cut + 1] if cut >= 0 else text
    return text


def numbered_records(text: str, dialect: Dialect, limit: int = SAMPLE_RECORDS + 1) -> tuple[list, int]:
    """Up to `limit` non-empty records of a head, each as (the 1-based line it starts on, its fields), and
    how many characters of the text they span."""
    found, line_before, spanned = [], 0, 0
    stream = io.StringIO(text, newline="")
    reader = csv.reader(stream, **dialect.csv_kwargs())
    try:
        for record in reader:
            if record:
                found.append((line_before + 1, record))
                spanned = stream.tell()
                if len(found) >= limit:
                    break
            line_before = reader.line_num
    except csv.Error:
        spanned = len(text)
    return found, spanned


def sample_records(text: str, dialect: Dialect) -> list[list[str]]:
    """Up to SAMPLE_RECORDS + 1 non-empty records of a head (a header, if there is one, and the rows)."""
    return [record for _, record in numbered_records(text, dialect)[0]]


def usual_field_count(records: list[list[str]]) -> Optional[int]:
    """The most common number of fields in the sampled records (the first such on ties), None if none."""
    if not records:
        return None
    counts = collections.Counter(len(r) for r in records)
    return max(counts, key=lambda k: (counts[k], -[len(r) for r in records].index(k)))


def is_number(value: str) -> bool:
    """True when a value parses as a number."""
    try:
        float(value)
        return True
    except ValueError:
        return False


def is_numeric(values: list[str]) -> bool:
    """True when most values parse as numbers."""
    return bool(values) and sum(is_number(v) for v in values) * 2 > len(values)


def value_kinds(values: list[str]) -> list[str]:
    """Each value's kind: number, or its modality (text, image, mesh)."""
    media = modality.classify(pa.array(values, type=pa.string()))
    return ["number" if is_number(v) else modality.KINDS[m] for v, m in zip(values, media)]


# Words a header row names its columns with: Finetuner's and common datasets' column names.
COLUMN_NAMES = frozenset("""
    text texts sentence sentences question questions answer answers query queries document documents doc docs
    passage passages title content description caption captions label labels class category tag tags target
    image images img picture photo mesh meshes url uri path file filename name score scores similarity relevance
    rating id anchor positive negative item""".split())
HEADER_SHARE = 0.9  # how many of a column's rows must share a kind for a first row of another kind to be a header
KIND_PLURALS = {"number": "numbers", "image": "image URIs", "mesh": "mesh URIs"}
REPLACEMENT = "\ufffd"  # what head_text decodes an undecodable byte to
NAME = re.compile(r"([a-z]+(?:[ _-][a-z]+)*)_?[0-9]*")  # words joined by ' ', '_' or '-', maybe a number after


def is_column_name(cell: str) -> bool:
    """True when a cell is a name made of column-name words (`Text`, `sentence1`, `image_url`), not a value
    that happens to start with one (`query 0`, `label 3`)."""
    name = NAME.fullmatch(cell.strip().lower())
    return name is not None and all(w in COLUMN_NAMES for w in re.split(r"[ _-]", name.group(1)))


def detect_header(records: list[list[str]], requested: str) -> tuple[bool, str]:
    """A file's sampled records and --header (auto, yes, no) -> (whether its first record is a header, why).

    auto: a header when every cell of the first record is a column name, or when one of its cells is text
    where the same column of the records below holds numbers, image URIs or mesh URIs (HEADER_SHARE of them)
    and the record decodes.
    """
    if requested != "auto":
        return requested == "yes", f"--header {requested}"
    if not records:
        return False, "the file has no rows"
    first = records[0]
    if all(is_column_name(cell) for cell in first):
        return True, "its cells are column names"
    if any(REPLACEMENT in cell for cell in first):
        return False, "it has bytes the encoding cannot read: a row to reject, not names"
    below = [r for r in records[1:] if len(r) == len(first)]
    for column, cell in enumerate(first):
        kinds = collections.Counter(value_kinds([r[column] for r in below]))
        kind, count = kinds.most_common(1)[0] if kinds else ("text", 0)
        if kind != "text" and count >= HEADER_SHARE * len(below) and cell.strip() and value_kinds([cell]) == ["text"]:
            return True, f"column {column + 1} holds {KIND_PLURALS[kind]} in the rows below, and {cell!r} here"
    return False, "no cell is a column name, and none differs in kind from the rows below"


TYPOGRAPHIC_OPEN = ("\u201c", "\u201e", "\u00ab")
TYPOGRAPHIC_CLOSE = ("\u201d", "\u00bb")
TYPOGRAPHIC_HINT = ("its fields are wrapped in typographic quotes (“ ”), which CSV does not treat as quotes, "
                    'so commas inside them split fields: use straight double quotes (")')


def uses_typographic_quotes(records: list[list[str]]) -> bool:
    """True when some field opens with a typographic quote and some later field of the row closes one."""
    for record in records:
        opened = False
        for field in record:
            value = field.strip()
            opened = opened or value.startswith(TYPOGRAPHIC_OPEN)
            if opened and value.endswith(TYPOGRAPHIC_CLOSE):
                return True
    return False


# Columns of a row in each layout that fixes them (values takes any number).
LAYOUT_COLUMNS = {"labeled": 2, "pairs": 2, "scores": 3}


class LayoutChoice(NamedTuple):
    """A file's layout, why (a phrase for the user), whether a flag or the data decided it (not a default),
    and how to get the other reading of the same columns ('' when there is none)."""

    layout: str
    why: str
    firm: bool
    other: str = ""


def choose_layout(requested: str, fields: int, records: list[list[str]], where: str) -> LayoutChoice:
    """The layout of a file read as `fields` columns: the requested one checked, or the one its records imply."""
    rows = [r for r in records if len(r) == fields]
    typographic = uses_typographic_quotes(rows)
    if requested in LAYOUT_COLUMNS and fields != LAYOUT_COLUMNS[requested]:
        reason = TYPOGRAPHIC_HINT if typographic else "pass the right --layout or fix the file"
        raise ConfigError(f"--layout {requested} needs {LAYOUT_COLUMNS[requested]} columns, but {where} has {fields}; {reason}.")
    if requested != "auto":
        return LayoutChoice(requested, f"--layout {requested}", True)
    if typographic:
        raise ConfigError(f"cannot tell the layout of {where}: {TYPOGRAPHIC_HINT}, or pass --layout to read it as it is.")
    if fields == 3 and is_numeric([r[2].strip() for r in rows]):
        return LayoutChoice("scores", "column 3 holds numbers", True, "pass --layout values to make every cell a document")
    if fields == 2:
        return labeled_or_pairs(rows)
    if fields == 3:
        return LayoutChoice("values", "it has 3 columns and column 3 does not hold numbers", True)
    return LayoutChoice("values", f"it has {fields} column{'s' if fields != 1 else ''}", True)


def labeled_or_pairs(rows: list[list[str]]) -> LayoutChoice:
    """Two-column rows -> labeled when column 2 repeats like labels (at most 2/3 as many distinct values as
    rows, and fewer than column 1), else pairs; firm unless neither column repeats (Finetuner's default)."""
    second = modality.majority(modality.classify(pa.array([r[1] for r in rows], type=pa.string())))
    if second != "text":
        return LayoutChoice("pairs", f"column 2 holds {KIND_PLURALS[second]}, which are not labels", True)
    n, first_values, labels = len(rows), len({r[0] for r in rows}), len({r[1] for r in rows})
    counts = f"{counted(first_values, 'distinct value')} in column 1 and {labels:,} in column 2, of {counted(n, 'row')}"
    if 3 * labels <= 2 * n and labels < first_values:
        return LayoutChoice("labeled", f"column 2 repeats like labels ({counts})", True,
                            "pass --layout pairs to read query-document pairs")
    other = "pass --is-labeled if column 2 is a label"
    if first_values < n and first_values <= labels:
        return LayoutChoice("pairs", f"column 1 repeats like queries ({counts})", True, other)
    return LayoutChoice("pairs", f"neither column repeats enough to tell ({counts}), so Finetuner's default", False, other)


def detect_modalities(layout: str, fields: int, records: list[list[str]], forced: Optional[tuple]) -> tuple:
    """Modality of every content column (label and score columns are not content)."""
    content_columns = {"labeled": 1, "pairs": 2, "scores": 2}.get(layout, fields)
    if forced is not None:
        if len(forced) != content_columns:
            raise ConfigError(
                f"--modalities lists {len(forced)} modalities, but --layout {layout} has {content_columns} content "
                f"column{'s' if content_columns != 1 else ''}.")
        return tuple(forced)
    found = []
    for column in range(content_columns):
        values = pa.array([r[column] for r in records if len(r) == fields], type=pa.string())
        found.append(modality.majority(modality.classify(values)) if len(values) else "text")
    return tuple(found)

