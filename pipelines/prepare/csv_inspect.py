"""Look at the first bytes of CSV files and decide dialect, field count, layout and column modalities.

Pure functions over a file's head (bytes); the launcher calls them before the pipeline starts, so a
layout that does not fit the files is a configuration error with one sentence, not a failed job.
"""
import collections
import csv
import io
from typing import Optional

import pyarrow as pa

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
        records = sample_records(sample, Dialect(delimiter), header=False)
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


def sample_records(text: str, dialect: Dialect, header: bool) -> list[list[str]]:
    """Up to SAMPLE_RECORDS non-empty records of a head (the header first, when there is one)."""
    records = []
    reader = csv.reader(io.StringIO(text, newline=""), **dialect.csv_kwargs())
    try:
        for record in reader:
            if record:
                records.append(record)
            if len(records) > SAMPLE_RECORDS:
                break
    except csv.Error:
        pass
    return records


def usual_field_count(records: list[list[str]]) -> Optional[int]:
    """The most common number of fields in the sampled records (the first such on ties), None if none."""
    if not records:
        return None
    counts = collections.Counter(len(r) for r in records)
    return max(counts, key=lambda k: (counts[k], -[len(r) for r in records].index(k)))


def is_numeric(values: list[str]) -> bool:
    """True when most values parse as numbers."""
    def number(v):
        try:
            float(v)
            return True
        except ValueError:
            return False
    return bool(values) and sum(number(v) for v in values) * 2 > len(values)


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


def choose_layout(requested: str, fields: int, records: list[list[str]], where: str) -> str:
    """The layout for files with `fields` columns: the requested one checked, or the one the data implies."""
    typographic = uses_typographic_quotes([r for r in records if len(r) == fields])
    if requested in LAYOUT_COLUMNS and fields != LAYOUT_COLUMNS[requested]:
        reason = TYPOGRAPHIC_HINT if typographic else "pass the right --layout or fix the file"
        raise ConfigError(f"--layout {requested} needs {LAYOUT_COLUMNS[requested]} columns, but {where} has {fields}; {reason}.")
    if requested != "auto":
        return requested
    if typographic:
        raise ConfigError(f"cannot tell the layout of {where}: {TYPOGRAPHIC_HINT}, or pass --layout to read it as it is.")
    if fields == 3 and is_numeric([r[2].strip() for r in records if len(r) == 3]):
        return "scores"
    if fields == 2:
        return "pairs"
    return "values"


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

