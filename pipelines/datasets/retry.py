"""Dead letters of a prepared dataset -> a new CSV input of just the failed rows, to fix and re-run.

Where a failed row's fields come from, by the stage that rejected it:
  read    `raw` is the record's text: cut into fields with its file's dialect (a field too many stays
          there for the user to fix).
  layout  `raw` holds the row's fields, re-quoted and joined with commas: cut with commas.
  media   the same; datasets of earlier versions kept only the URI that failed there, so for them the
          record is read again from `source_file`, where it starts at line `source_row` (the file must
          still have the size the manifest recorded).
Relative media paths are made absolute against the source file's folder, as prepare resolved them, so
the retry file works from any folder. Not retryable (listed with why): rows whose bytes were not text in
the file's encoding (invalid bytes, NUL bytes, a compressed file), records whose quotes did not parse,
documents from docarray files, and media rows whose source file is gone or changed.
"""
import codecs
import csv
import dataclasses
import io
import posixpath
import shlex
from typing import Optional

import pyarrow as pa

from schemas.inputs import Dialect
from schemas.options import MediaOptions
from schemas import modalities as modality
from transforms.storage import filesystem
from transforms.uris import is_absolute

_DIALECT_FLAGS = {",": "excel", "\t": "excel-tab"}
# (flag, manifest media option) re-used by the re-run when the run changed them from the default.
_MEDIA_FLAGS = (("--point-cloud-size", "point_cloud_size"), ("--min-points", "min_points"),
                ("--max-media-bytes", "max_bytes"),
                ("--max-image-pixels", "max_image_pixels"), ("--image-size", "image_size"),
                ("--image-box", "image_box"), ("--image-format", "image_format"),
                ("--image-quality", "image_quality"), ("--fetch-timeout", "timeout"),
                ("--fetch-retries", "retries"), ("--fetch-concurrency", "concurrency"),
                ("--allowed-roots", "allowed_roots"), ("--decode-timeout", "decode_timeout"),
                ("--decode-memory", "decode_memory"), ("--user-agent", "user_agent"),
                ("--per-host-concurrency", "per_host_concurrency"),
                ("--host-failure-threshold", "host_failure_threshold"), ("--batch-deadline", "batch_deadline"),
                ("--cache", "cache"), ("--cache-max-age", "cache_max_age"))
_MEDIA_SWITCHES = (("convert-to-blob", "convert_to_blob"), ("create-point-clouds", "create_point_clouds"),
                   ("fetch-remote", "fetch_remote"), ("allow-private-network", "allow_private_network"),
                   ("ignore-opt-outs", "ignore_opt_outs"))


@dataclasses.dataclass(frozen=True)
class RetryRows:
    """The rows to write, as (input dict of the manifest, line, fields), and the dead letters that cannot be."""

    rows: list
    not_retryable: list  # dicts: source_file, source_row, stage, why


def _dialect(source: dict) -> Dialect:
    return Dialect(source["delimiter"], bool(source.get("skipinitialspace")))


def _records(text: str, dialect: Dialect) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(text, newline=""), **dialect.csv_kwargs()) if r]


def read_records(source: dict, lines: set) -> dict:
    """The records of a CSV input (a manifest input dict) that start at the given 1-based lines ->
    {line: fields}. ValueError when the file is gone or no longer has the size the run read."""
    fs, path = filesystem(source["url"])
    if not fs.exists(path):
        raise ValueError(f"{source['url']} is gone, so its row cannot be read again")
    if fs.size(path) != source["size"]:
        raise ValueError(f"{source['url']} changed since the run ({fs.size(path)} bytes, was {source['size']}), "
                         "so its line numbers may no longer match")
    encoding = "utf-8-sig" if codecs.lookup(source["encoding"]).name == "utf-8" else source["encoding"]
    found, before = {}, 0
    with fs.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="") as text:
        reader = csv.reader(text, **_dialect(source).csv_kwargs())
        while len(found) < len(lines):
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error:
                before = reader.line_num
                continue
            start, before = before + 1, reader.line_num
            if start in lines and record:
                found[start] = record
    return found


def _resolved(fields: list[str], source: dict, modalities: list) -> list[str]:
    """Fields with relative image and mesh paths made absolute against the source file's folder: in a row
    of the file's width, the values of media columns that look like their column's kind; in a row of
    another width (a field too many or too few), any value that looks like a kind of media the run loads."""
    media = [m for m in modalities if m != "text"]
    base = posixpath.dirname(source["url"])
    if not media or not base:
        return fields
    kinds = [modality.KINDS[k] for k in modality.classify(pa.array(fields, type=pa.string()))]
    if len(fields) == source["fields"]:
        wanted = [i < len(modalities) and modalities[i] != "text" and kinds[i] == modalities[i] for i in range(len(fields))]
    else:
        wanted = [kind in media for kind in kinds]
    return [f"{base}/{value}" if want and not is_absolute(value) else value for value, want in zip(fields, wanted)]


def _why_not(letter: dict, source: Optional[dict]) -> Optional[str]:
    where = f"{letter['source_file']} at line {letter['source_row']}"
    if source is None or source.get("format") == "docarray":
        return f"it is a document of {letter['source_file']}, not a CSV row; fix that docarray file and run it again"
    if letter["stage"] == "read" and letter["reason_class"] != "field_count":
        return {
            "encoding": f"its bytes are not valid {source['encoding']}; fix them in {where} or re-run the file "
                        "with the right --encoding",
            "nul_byte": f"it holds a NUL byte, which a text file cannot; fix {where} or re-run the file with the "
                        "right --encoding",
            "compressed": f"{letter['source_file']} is compressed as a whole; decompress it and run the CSV inside",
            "quote": f"its quotes do not parse, so it cannot be cut into fields; fix it in {where}",
        }.get(letter["reason_class"], f"it could not be cut into fields ({letter['reason_class']}); fix it in {where}")
    if letter["stage"] not in ("read", "layout", "media"):
        return f"stage {letter['stage']!r} rejects documents, not rows"
    if letter["stage"] != "media" and letter["raw"] is None:
        return f"its dead letter keeps no text of the row; fix it in {where}"
    return None


def _holds_row(letter: dict, source: dict) -> bool:
    """Whether a media dead letter's `raw` is its CSV row (one record of the file's width), not a URI."""
    records = _records(letter["raw"] or "", Dialect(","))
    return len(records) == 1 and len(records[0]) == source["fields"]


def collect(dead: list[dict], manifest: dict) -> RetryRows:
    """Dead-letter dicts (DEAD_LETTER_SCHEMA) -> the rows to write, once per source row, in file order."""
    sources = {i["url"]: i for i in manifest["inputs"]}
    rows, refused, media, seen = {}, [], {}, set()
    for letter in sorted(dead, key=lambda d: (d["source_file"] or "", d["source_row"] or 0)):
        key = (letter["source_file"], letter["source_row"])
        if key in seen:  # a row can fail twice, e.g. both documents of a query-document pair
            continue
        seen.add(key)
        source = sources.get(letter["source_file"])
        why = _why_not(letter, source)
        if why is None and letter["stage"] == "media" and not _holds_row(letter, source):
            media.setdefault(letter["source_file"], []).append(letter)
            continue
        if why is None:
            records = _records(letter["raw"], _dialect(source) if letter["stage"] == "read" else Dialect(","))
            why = None if len(records) == 1 else "its text does not hold exactly one CSV record"
        if why is None:
            rows[key] = (source, letter["source_row"], records[0])
        else:
            refused.append(dict(source_file=letter["source_file"], source_row=letter["source_row"],
                                stage=letter["stage"], why=why))
    for url, letters in media.items():
        try:
            records = read_records(sources[url], {d["source_row"] for d in letters})
        except ValueError as exc:
            records, problem = {}, str(exc)
        else:
            problem = "no record starts at that line of the file any more"
        for letter in letters:
            if letter["source_row"] in records:
                rows[(url, letter["source_row"])] = (sources[url], letter["source_row"], records[letter["source_row"]])
            else:
                refused.append(dict(source_file=url, source_row=letter["source_row"], stage="media", why=problem))
    ordered = [rows[k] for k in sorted(rows, key=lambda k: (k[0] or "", k[1] or 0))]
    modalities = manifest.get("modalities") or []
    return RetryRows([(s, line, _resolved(fields, s, modalities)) for s, line, fields in ordered],
                     sorted(refused, key=lambda r: (r["source_file"] or "", r["source_row"] or 0)))


def write_retry_file(retry: RetryRows, url: str) -> Optional[dict]:
    """Write the rows as CSV (UTF-8, the first row's file's delimiter, its header when it had one) to url;
    returns that file's reading options {delimiter, header}, or None when there was nothing to write."""
    if not retry.rows:
        return None
    first = retry.rows[0][0]
    header = None
    if first.get("header"):
        try:
            header = read_records(first, {1}).get(1)
        except ValueError:  # the file is gone or changed: any header row does, --header only skips it
            header = None
        header = header or [f"column_{i + 1}" for i in range(first["fields"])]
    fs, path = filesystem(url)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=first["delimiter"], quotechar='"', doublequote=True,
                            quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(fields for _, _, fields in retry.rows)
    return {"delimiter": first["delimiter"], "header": header is not None}


def rerun_advice(url: str) -> str:
    """What to do about a dataset's dead letters: fix their causes, then run its job again, reusing it."""
    return (f"Fix their causes (see the reasons above), then run the same `finetune-etl prepare` command again with "
            f"--incremental-from {shlex.quote(url)} --overwrite: the documents it made are reused (no fetch, no "
            "decode), the failed rows go through again, and it becomes one complete dataset. (--retry FILE writes "
            "just the failed rows, to prepare them as a separate dataset.)")


def rerun_command(retry_file: str, written: dict, manifest: dict, output: str) -> str:
    """The `finetune-etl prepare` command that runs the retry file with the original run's layout,
    modalities and the options that change documents (not --size / --sampling-rate: every row is wanted)."""
    options = manifest["options"]
    args = ["finetune-etl", "prepare", "--input", retry_file, "--output", output, "--layout", manifest["layout"]]
    if manifest.get("modalities"):
        args += ["--modalities", ",".join(manifest["modalities"])]
    args += ["--header", "yes" if written["header"] else "no"]  # never guessed: a failed first row is data
    if written["delimiter"] in _DIALECT_FLAGS:
        args += ["--dialect", _DIALECT_FLAGS[written["delimiter"]]]
    else:
        args += ["--delimiter", written["delimiter"]]
    if options["csv"].get("score_scale"):
        args += ["--score-scale", f"{options['csv']['score_scale']:g}"]
    if options["output"].get("format", "both") != "both":
        args += ["--format", options["output"]["format"]]
    defaults, media = dataclasses.asdict(MediaOptions()), options.get("media", {})
    for name, key in _MEDIA_SWITCHES:
        if key in media and media[key] != defaults[key]:
            args.append(f"--{name}" if media[key] else f"--no-{name}")
    for flag, key in _MEDIA_FLAGS:
        value = _plain(media.get(key, defaults[key]))
        if value is not None and value != _plain(defaults[key]):
            args += [flag, ("x" if key == "image_box" else ",").join(map(str, value)) if isinstance(value, list) else str(value)]
    return " ".join(shlex.quote(a) for a in args)


def _plain(value):
    """Tuples (the dataclass defaults) as lists (what JSON gives back)."""
    return list(value) if isinstance(value, (list, tuple)) else value
