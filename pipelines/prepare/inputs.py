"""Resolve --input patterns to files and learn, from each file's first bytes, how to read it.

Runs in the launcher before the pipeline: an empty glob, a missing file or a layout that does not fit the
files stops the run here with one sentence (ConfigError).
"""
import concurrent.futures
import dataclasses
import os

import fsspec
from fsspec.core import url_to_fs

from schemas.inputs import NAMED_DIALECTS, InputFile
from schemas.options import ConfigError, CSVOptions
from pipelines.prepare import csv_inspect
from pipelines.prepare.csv_inspect import LAYOUT_COLUMNS
from transforms.uris import is_local

HEAD_BYTES = 64 * 1024
HEAD_THREADS = 16
DOCARRAY_SUFFIXES = (".docs",)


def is_docarray(url: str) -> bool:
    """Whether an input file is a docarray DocList (read by transforms.read.read_docarray), not CSV."""
    return url.lower().endswith(DOCARRAY_SUFFIXES)


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """Every input file with its reading options, and the run's layout and column modalities."""

    files: tuple
    layout: str
    modalities: tuple
    docarray_files: tuple = ()
    estimated_rows: int = 0


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


def plan_inputs(patterns: list[str], options: CSVOptions) -> InputPlan:
    """--input patterns and CSV options -> the InputPlan, or ConfigError when they cannot fit together.
    Files ending in .docs are docarray DocLists; every other file is CSV."""
    found = expand_inputs(patterns)
    docarray_files = tuple((url, size) for url, size in found if is_docarray(url))
    files = [(url, size) for url, size in found if not is_docarray(url)]
    if not files:
        return InputPlan((), "docarray", (), docarray_files, sum(size // 100 for _, size in docarray_files))
    with concurrent.futures.ThreadPoolExecutor(HEAD_THREADS) as pool:
        heads = list(pool.map(_read_head, [url for url, _ in files]))
    inspected, estimated_rows = [], 0
    for (url, size), head in zip(files, heads):
        text = csv_inspect.head_text(head, options.encoding, whole_file=len(head) >= size)
        if options.dialect == "auto":
            dialect = csv_inspect.sniff_dialect(text)
        else:
            dialect = NAMED_DIALECTS[options.dialect]
        records = csv_inspect.sample_records(text, dialect, options.header)
        data = records[1:] if options.header else records
        inspected.append((url, size, dialect, data, csv_inspect.usual_field_count(data or records)))
        estimated_rows += size * len(records) // max(len(text.encode(options.encoding, "replace")), 1)
    counts = {fields for *_, fields in inspected if fields is not None}
    needs = LAYOUT_COLUMNS.get(options.layout)
    if needs in counts:
        # The layout says how many columns a row has: rows of a file that does not fit are dead letters.
        counts = {needs}
    if len(counts) > 1:
        examples = "; ".join(f"{url} has {fields}" for url, _, _, _, fields in inspected if fields is not None)
        raise ConfigError(f"the inputs do not have the same number of columns ({examples}); one run takes one layout: "
                          "pass --layout to read the files that fit it, the rows of the others becoming dead letters.")
    fields = counts.pop() if counts else 1
    sample = [r for _, _, _, records, _ in inspected for r in records]
    where = inspected[0][0] if len(inspected) == 1 else "the inputs"
    layout = csv_inspect.choose_layout(options.layout, fields, sample, where)
    modalities = csv_inspect.detect_modalities(layout, fields, sample, options.modalities)
    input_files = tuple(
        InputFile(url, size, dialect, options.encoding, options.header, fields) for url, size, dialect, _, _ in inspected)
    return InputPlan(input_files, layout, modalities, docarray_files, estimated_rows)
