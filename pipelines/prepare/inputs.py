"""Resolve --input patterns to files and learn, from each file's first bytes, how to read it.

Runs in the launcher before the pipeline: an empty glob, a missing file or a layout that does not fit the
files stops the run here with one sentence (ConfigError).
"""
import concurrent.futures
import dataclasses
import os
from typing import Optional

import fsspec
from fsspec.core import url_to_fs

from schemas.inputs import NAMED_DIALECTS, Dialect, InputFile
from schemas.options import ConfigError, CSVOptions
from pipelines.prepare import csv_inspect
from pipelines.prepare.csv_inspect import LAYOUT_COLUMNS, LayoutChoice
from transforms.uris import common_folder, is_local, redact

HEAD_BYTES = 64 * 1024
HEAD_THREADS = 16
DOCARRAY_SUFFIXES = (".docs",)


def is_docarray(url: str) -> bool:
    """Whether an input file is a docarray DocList (read by transforms.read.read_docarray), not CSV."""
    return url.lower().endswith(DOCARRAY_SUFFIXES)


@dataclasses.dataclass(frozen=True)
class FileDecision:
    """How one CSV input is read and why, in words for the user: its first row (as text), whether that is a
    header, its layout and content columns' modalities; `*_forced` when a flag decided, not the data."""

    url: str
    first_row: str
    header: bool
    header_why: str
    header_forced: bool
    layout: str
    modalities: tuple
    layout_why: str
    layout_forced: bool
    other_layout: str = ""

    def manifest(self) -> dict:
        """The decision's entries in the manifest's record of this input."""
        return {"layout": self.layout, "modalities": list(self.modalities),
                "why": {"header": self.header_why, "layout": self.layout_why}}


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """Every input file with its reading options, the run's layout and column modalities, and the decision
    made for each CSV file (in the order of `files`)."""

    files: tuple
    layout: str
    modalities: tuple
    docarray_files: tuple = ()
    estimated_rows: int = 0
    decisions: tuple = ()

    @property
    def media_root(self) -> Optional[str]:
        """The folder that relative media paths in the CSV files are kept relative to: their common folder."""
        return common_folder([f.url for f in self.files])


@dataclasses.dataclass(frozen=True)
class FileHead:
    """What the first bytes of one CSV input say on their own: dialect, header decision and records, each
    record as (the line it starts on, its fields), the header first when there is one."""

    url: str
    size: int
    dialect: Dialect
    header: bool
    header_why: str
    records: tuple
    estimated_rows: int

    @property
    def rows(self) -> list[list[str]]:
        """The fields of the records after the header."""
        return [fields for _, fields in self.records[1 if self.header else 0:]]

    @property
    def fields(self) -> Optional[int]:
        """The usual number of fields of its rows (None for an empty head)."""
        return csv_inspect.usual_field_count(self.rows or [fields for _, fields in self.records])

    @property
    def first_row(self) -> str:
        """The first record as the user would write it ('' for an empty head)."""
        separator = self.dialect.delimiter + (" " if self.dialect.skipinitialspace else "")
        return separator.join(self.records[0][1]) if self.records else ""


def expand_inputs(patterns: list[str]) -> list[tuple[str, int]]:
    """--input values -> sorted unique (url, size) of the files they name."""
    found = {}
    for pattern in patterns:
        if is_local(pattern):
            pattern = os.path.abspath(pattern.removeprefix("file://"))
        try:
            fs, paths = _files_of(pattern)
        except ConfigError:
            raise
        except FileNotFoundError:
            raise ConfigError(f"--input {pattern!r} matches no file.") from None
        except Exception as exc:  # storage errors (permissions, network) all mean "cannot read this input"
            raise ConfigError(f"--input {pattern!r} cannot be read ({type(exc).__name__}: {exc}).") from None
        for p in paths:
            url = p if is_local(pattern) else fs.unstrip_protocol(p)
            found[url] = fs.size(p)
    return sorted(found.items())


def _files_of(pattern: str) -> tuple:
    """An --input value -> (its filesystem, the file paths it names); ConfigError when none."""
    fs, path = url_to_fs(pattern)
    if fsspec.core.has_magic(path):
        paths = [p for p in sorted(fs.glob(path)) if fs.isfile(p)]
        if not paths:
            raise ConfigError(f"--input {pattern!r} matches no file.")
    elif not fs.exists(path):
        raise ConfigError(f"--input {pattern!r} does not exist.")
    elif fs.isdir(path):
        raise ConfigError(f"--input {pattern!r} is a folder; pass a glob such as {pattern.rstrip('/')}/*.csv.")
    else:
        paths = [path]
    return fs, paths


def _read_head(url: str) -> bytes:
    with fsspec.open(url, "rb") as handle:
        return handle.read(HEAD_BYTES)


def read_heads(files: list[tuple[str, int]], options: CSVOptions) -> list[FileHead]:
    """(url, size) of CSV files -> what each one's first HEAD_BYTES say (read in parallel)."""
    with concurrent.futures.ThreadPoolExecutor(HEAD_THREADS) as pool:
        heads = list(pool.map(_read_head, [url for url, _ in files]))
    return [look_at(url, size, head, options) for (url, size), head in zip(files, heads)]


def look_at(url: str, size: int, head: bytes, options: CSVOptions) -> FileHead:
    """A file's first bytes -> its dialect, header decision, sampled records and estimated row count."""
    text = csv_inspect.head_text(head, options.encoding, whole_file=len(head) >= size)
    if options.delimiter is not None:
        base = NAMED_DIALECTS["excel" if options.dialect == "auto" else options.dialect]
        dialect = dataclasses.replace(base, delimiter=options.delimiter)
    elif options.dialect == "auto":
        dialect = csv_inspect.sniff_dialect(text)
    else:
        dialect = NAMED_DIALECTS[options.dialect]
    records, spanned = csv_inspect.numbered_records(text, dialect)
    header, why = csv_inspect.detect_header([fields for _, fields in records], options.header)
    estimated_rows = size * len(records) // max(len(text[:spanned].encode(options.encoding, "replace")), 1)
    return FileHead(url, size, dialect, header, why, tuple(records), estimated_rows)


def plan_inputs(patterns: list[str], options: CSVOptions) -> InputPlan:
    """--input patterns and CSV options -> the InputPlan, or ConfigError when they cannot fit together.
    Files ending in .docs are docarray DocLists; every other file is CSV."""
    found = expand_inputs(patterns)
    docarray_files = tuple((url, size) for url, size in found if is_docarray(url))
    files = [(url, size) for url, size in found if not is_docarray(url)]
    if not files:
        return InputPlan((), "docarray", (), docarray_files, sum(size // 100 for _, size in docarray_files))
    return decide(read_heads(files, options), options, docarray_files)


def decide(heads: list[FileHead], options: CSVOptions, docarray_files: tuple = ()) -> InputPlan:
    """Each CSV file's head -> the InputPlan: one field count, a layout and modalities per file, and the run's
    own when the files agree (ConfigError naming the files and what each looks like when they do not).

    A file whose layout is only Finetuner's default (two columns, neither repeating) is read like the others
    when its columns fit that; a file with no rows of the run's width follows the others."""
    fields = _field_count(heads, options)
    rows = [[r for r in h.rows if len(r) == fields] for h in heads]
    choices = [csv_inspect.choose_layout(options.layout, fields, r, h.url) for h, r in zip(heads, rows)]
    looks = [_look(choice.layout, fields, r, options) for choice, r in zip(choices, rows)]
    known = [i for i, r in enumerate(rows) if r]
    candidates = {looks[i] for i in known if choices[i].firm} or {looks[i] for i in known}
    if len(candidates) > 1:
        raise ConfigError(_disagreement([(heads[i].url, looks[i]) for i in known]))
    run = candidates.pop() if candidates else _look(
        csv_inspect.choose_layout(options.layout, fields, [], "the inputs").layout, fields, [], options)
    for i in known:
        if looks[i] != run and not choices[i].firm and _look(run[0], fields, rows[i], options) == run:
            looks[i] = run
            choices[i] = choices[i]._replace(why=f"{choices[i].why}; read as {run[0]} like the other inputs", other="")
    if any(looks[i] != run for i in known):
        raise ConfigError(_disagreement([(heads[i].url, looks[i]) for i in known]))
    follows = LayoutChoice(run[0], f"no rows of {fields} columns in its first {HEAD_BYTES // 1024} KiB: read like the "
                                   "other inputs", False)
    decisions = []
    for head, choice, own in zip(heads, choices, rows):
        choice = choice if own else follows
        decisions.append(FileDecision(head.url, head.first_row, head.header, head.header_why, options.header != "auto",
                                      run[0], run[1], choice.why, options.layout != "auto", choice.other))
    files = tuple(InputFile(h.url, h.size, h.dialect, options.encoding, h.header, fields) for h in heads)
    return InputPlan(files, run[0], run[1], docarray_files, sum(h.estimated_rows for h in heads), tuple(decisions))


def _field_count(heads: list[FileHead], options: CSVOptions) -> int:
    """The number of fields every row of the run has; ConfigError when the files disagree and no layout says."""
    counts = {h.fields for h in heads if h.fields is not None}
    needs = LAYOUT_COLUMNS.get(options.layout)
    if needs in counts:
        # The layout says how many columns a row has: rows of a file that does not fit are dead letters.
        counts = {needs}
    if len(counts) > 1:
        examples = "; ".join(f"{shown(h.url)} has {h.fields}" for h in heads if h.fields is not None)
        raise ConfigError(f"the inputs do not have the same number of columns ({examples}); one run takes one layout: "
                          "pass --layout to read the files that fit it, the rows of the others becoming dead letters.")
    return counts.pop() if counts else 1


def _look(layout: str, fields: int, rows: list[list[str]], options: CSVOptions) -> tuple[str, tuple]:
    """(layout, content columns' modalities) of rows read in that layout."""
    return layout, csv_inspect.detect_modalities(layout, fields, rows, options.modalities)


def _disagreement(looks: list[tuple[str, tuple]]) -> str:
    """The one-line error for files that need different layouts: which files look like what."""
    by_look: dict = {}
    for url, look in looks:
        by_look.setdefault(look, []).append(shown(url))
    parts = []
    for (layout, modalities), names in by_look.items():
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        parts.append(f"{listed} {'look' if len(names) > 1 else 'looks'} like {describe(layout, modalities)}")
    return (f"the inputs need different layouts: {'; '.join(parts)}; one run makes one dataset of one layout: prepare "
            "them in separate runs, or pass --layout and --modalities to read every file alike (rows that do not "
            "fit become dead letters).")


def describe(layout: str, modalities: tuple) -> str:
    """A layout and its content columns' modalities in words: 'labeled image rows (image, label)'."""
    columns = ", ".join(modalities)
    if layout == "labeled":
        return f"labeled {modalities[0]} rows ({columns}, label)"
    if layout == "pairs":
        return f"{'CLIP' if len(set(modalities)) > 1 else 'query-document'} pairs ({columns})"
    if layout == "scores":
        return f"scored pairs ({columns}, score)"
    return f"values ({columns}), every cell a document"


def shown(url: str) -> str:
    """A URL as the user reads it: a local path relative to the working folder when inside it, no credentials."""
    if is_local(url):
        relative = os.path.relpath(url.removeprefix("file://"))
        return url if relative.startswith("..") else relative
    return redact(url)


DECISION_LINES = 20  # at most this many decision lines before a run; `finetune-etl inspect` shows them all


def decision_lines(plan: InputPlan) -> list[str]:
    """One line per decision no flag forced (each CSV file's header and layout), to print before a run."""
    lines = []
    for d in plan.decisions:
        name = shown(d.url)
        if d.first_row and not d.header_forced:
            row = quoted(d.first_row)
            if d.header:
                lines.append(f"finetune-etl: {name}: first row {row} read as a header ({d.header_why}); "
                             "pass --header no to read it as data")
            else:
                lines.append(f"finetune-etl: {name}: first row {row} read as data ({d.header_why}); "
                             "pass --header yes if it names the columns")
        if not d.layout_forced:
            other = f"; {d.other_layout}" if d.other_layout else ""
            lines.append(f"finetune-etl: {name}: read as {describe(d.layout, d.modalities)}: {d.layout_why}{other}")
    if len(lines) > DECISION_LINES:
        lines[DECISION_LINES:] = [f"finetune-etl: and {len(lines) - DECISION_LINES} more such decisions: "
                                  "finetune-etl inspect shows them all, manifest.json records them"]
    return lines


def quoted(text: str, limit: int = 60) -> str:
    """A text in double quotes, cut to `limit` characters with an ellipsis."""
    return '"' + (text if len(text) <= limit else text[: limit - 1] + "…") + '"'
