"""`finetune-etl errors URL [filters] [--json] [--retry FILE]`: a dataset's dead letters, what to do about
them (fix the causes, then run the same job again with --incremental-from URL --overwrite), and with
--retry its failed rows as a new input to fix and run on their own.

Filters (all optional, combined): --stage, --reason-class (exact), --grep (case-insensitive, in the
reason, the raw text or the source file). --limit caps the rows listed, not the retry file, which holds
every matching row that can be written again (pipelines/retry.py says how and which cannot).

--json prints {url, total, matched, listed: [dead letters: source_file, source_row, stage, reason_class,
reason, raw], retry: null or {file, rows, not_retryable: [{source_file, source_row, stage, why}], command}}.
"""
import argparse
import json
from typing import Optional

from rich import box
from rich.console import Console
from rich.table import Table

from pipelines.datasets.dataset_errors import DATASET_ERRORS, dataset_error, fail
from pipelines.datasets.load import dead_letters_of, read_snapshot
from pipelines.datasets.retry import collect, rerun_advice, rerun_command, write_retry_file
from pipelines.datasets.summary_render import shown_path, shown_reason, shown_text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="finetune-etl errors", description="List a dataset's dead letters; --retry "
                                "writes the failed rows as a new input file to fix and re-run.")
    p.add_argument("url", help="the dataset folder (local path or fsspec URL such as gs://bucket/dataset)")
    p.add_argument("--stage", help="only this stage: read, layout or media")
    p.add_argument("--reason-class", metavar="C", help="only this reason class, e.g. field_count, score, missing")
    p.add_argument("--grep", metavar="TEXT", help="only dead letters whose reason, raw text or file contains TEXT")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="list at most N (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON (keys: see pipelines/datasets/errors.py)")
    p.add_argument("--retry", metavar="FILE", help="write the matching rows to FILE (CSV, UTF-8) to fix and re-run")
    return p


def matching(dead: list[dict], stage: Optional[str], reason_class: Optional[str], grep: Optional[str]) -> list[dict]:
    """Dead-letter dicts -> those passing every given filter, sorted by source file and row."""
    needle = grep.lower() if grep else None
    kept = [d for d in dead if (stage is None or d["stage"] == stage)
            and (reason_class is None or d["reason_class"] == reason_class)
            and (needle is None or any(needle in (d[k] or "").lower() for k in ("reason", "raw", "source_file")))]
    return sorted(kept, key=lambda d: (d["source_file"] or "", d["source_row"] or 0))


def _listing(letters: list[dict], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("source_file", "row", "stage", "reason_class", "reason"):  # names kept whole, paths and reasons folded
        table.add_column(column, justify="right" if column == "row" else "left", overflow="fold",
                         no_wrap=column in ("row", "stage", "reason_class"))
    for d in letters:
        table.add_row(shown_text(shown_path(d["source_file"])), str(d["source_row"]), d["stage"], d["reason_class"],
                      shown_text(shown_reason(d["reason"])))
    return table


def _retry(url: str, manifest: dict, kept: list[dict], retry_file: str) -> dict:
    rows = collect(kept, manifest)
    written = write_retry_file(rows, retry_file)
    command = rerun_command(retry_file, written, manifest, url.rstrip("/") + "-retry") if written else None
    return {"file": retry_file if written else None, "rows": len(rows.rows), "not_retryable": rows.not_retryable,
            "command": command}


def _print_retry(console: Console, retry: dict, retry_file: str) -> None:
    refused = retry["not_retryable"]
    if refused:
        table = Table(title=f"Not retryable: {len(refused)}", title_justify="left", box=box.SIMPLE_HEAD,
                      show_edge=False, pad_edge=False)
        for column in ("source_file", "row", "stage", "why"):
            table.add_column(column, justify="right" if column == "row" else "left", overflow="fold")
        for r in refused:
            table.add_row(shown_path(r["source_file"]), str(r["source_row"]), r["stage"], shown_reason(r["why"]))
        console.print(table)
    if not retry["rows"]:
        console.print(f"No row can be written again, so {retry_file} was not written.")
        return
    console.print(f"Wrote {retry['rows']} row{'s' if retry['rows'] != 1 else ''} to {retry_file}"
                  f"{f' ({len(refused)} not retryable, listed above)' if refused else ''}.")
    header = " (the file starts with the input's header row, hence --header)" if "--header" in retry["command"].split() else ""
    console.print(f"Fix their causes (see the reasons above), then re-run just those rows{header} with:")
    console.print(f"  {retry['command']}")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.limit < 0:
        return fail(f"--limit {args.limit} must be 0 or more.")
    try:
        manifest, dead = read_snapshot(args.url, lambda m: (m, dead_letters_of(args.url, m).to_pylist()))
    except DATASET_ERRORS as error:
        return dataset_error(error)
    kept = matching(dead, args.stage, args.reason_class, args.grep)
    retry = _retry(args.url, manifest, kept, args.retry) if args.retry else None
    if args.json:
        print(json.dumps({"url": args.url, "total": len(dead), "matched": len(kept), "listed": kept[:args.limit],
                          "retry": retry}, indent=2))
        return 0
    console = Console(highlight=False, markup=False, soft_wrap=True)  # text as is; sentences stay whole lines
    filtered = any(v is not None for v in (args.stage, args.reason_class, args.grep))
    title = f"Dead letters: {len(kept)}" + (f" of {len(dead)} match" if filtered else "")
    if len(kept) > args.limit:
        title += f" (the first {args.limit} listed; --limit N lists more)"
    console.print(_listing(kept[:args.limit], title))
    if not kept and dead:
        stages = ", ".join(sorted({d["stage"] for d in dead}))
        classes = ", ".join(sorted({d["reason_class"] for d in dead}))
        console.print(f"No dead letter matches; the stages here are {stages} and the reason classes {classes}.")
    if retry is not None:
        _print_retry(console, retry, args.retry)
    elif kept:
        console.print(rerun_advice(args.url))
    return 0
