"""What --split costs: the same default run with and without it, side by side, on generated CSVs and photos.

    python -m bench.split_bench --rows 1000000 --layout pairs,labeled --images 10000 [--workdir DIR] [--runs 1]
        [--code DIR] [--charts DIR]

In: a row count and text layouts; a photo count (0, the default: no photo case). Each text CSV is generated
by bench.make_csv into WORKDIR (cached by name); the photos are bench.duplicates_bench's (cached file by
file: distinct 640x480 JPEGs and a tenth of near copies, labeled with make_photos' 8 labels). Each run is
`finetune-etl prepare --input CSV --layout L --output ...` with the defaults (`--format both`), once plain
and once with `--split train=0.8,validation=0.1,test=0.1`, alternating, as subprocesses under
/usr/bin/time; the photos split with `--split-by document` (8 labels kept whole could not come near the
fractions). `--code DIR` runs another copy of the project (e.g. an older version, for a before/after on the
same machine state). Out: a markdown table (median wall seconds, median CPU seconds (user + system:
steadier than wall time on a shared machine), peak RSS, documents, the split run's wall and CPU time as
multiples of the plain run's, achieved fractions), printed and appended to --results with the command; with
--charts, a bar chart of the CPU ratios against the issue's limit (+30%).
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys

from bench import report
from bench.duplicates_bench import ensure_photos
from bench.make_csv import cached_csv
from bench.measured_run import add_comparison_arguments, measured_prepare

SPLIT = "train=0.8,validation=0.1,test=0.1"
TARGET = 1.3  # the limit: --split adds at most 30% to a plain run


def run_once(csv: str, args: list[str], out: str, split: bool, code: str) -> dict:
    """One prepare run of the project in folder `code` -> {seconds, cpu_seconds, peak_mb, documents, shares}."""
    run = measured_prepare(["--input", csv, *args] + (["--split", SPLIT] if split else []), out, code)
    manifest = run.pop("manifest")
    documents = manifest["counts"]["documents_written"]
    shares = {name: s["documents"] / max(documents, 1)
              for name, s in manifest.get("splits", {}).get("per_split", {}).items()}
    return {**run, "documents": documents, "shares": shares}


def cases(args) -> list[tuple[str, str, list[str]]]:
    """The benchmark's cases: (name, input CSV, prepare arguments other than --split) each."""
    found = [(layout, cached_csv(args.workdir, "split", layout, args.rows), ["--layout", layout])
             for layout in filter(None, args.layout.split(","))]
    if args.images:
        csv, _ = ensure_photos(args.workdir, args.images)
        found.append((f"photos, {args.images:,}", csv, ["--layout", "labeled", "--split-by", "document"]))
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--layout", default="pairs,labeled", help="text layouts, comma-separated ('': none)")
    parser.add_argument("--images", type=int, default=0, help="photos, labeled (0: no photo case)")
    add_comparison_arguments(parser)
    args = parser.parse_args(argv)
    code = os.path.abspath(args.code)
    os.makedirs(args.workdir, exist_ok=True)
    sizes = [f"{args.rows:,} rows"] if args.layout else []
    sizes += [f"{args.images:,} photos"] if args.images else []
    lines = [f"## {report.now()} - --split against a plain run, {', '.join(sizes)}", "",
             f"`python -m bench.split_bench {shlex.join(argv if argv is not None else sys.argv[1:])}` on "
             f"{report.machine()}", "",
             "| case | run | median s | median CPU s | peak MB | documents | split / plain (wall) "
             "| split / plain (CPU) | achieved fractions |",
             "|---|---|---|---|---|---|---|---|---|"]
    ratios = {}
    for index, (name, csv, prepare_args) in enumerate(cases(args)):
        results = {False: [], True: []}
        for _ in range(args.runs):
            for split in (False, True):
                out = os.path.join(args.workdir, f"out-{index}-{'split' if split else 'plain'}")
                results[split].append(run_once(csv, prepare_args, out, split, code))
        plain = {kind: statistics.median(r[kind] for r in results[False]) for kind in ("seconds", "cpu_seconds")}
        for split in (False, True):
            rs = results[split]
            seconds, cpu = (statistics.median(r[kind] for r in rs) for kind in ("seconds", "cpu_seconds"))
            shares = ", ".join(f"{n} {s:.3f}" for n, s in rs[-1]["shares"].items()) or "-"
            lines.append(f"| {name} | {'--split ' + SPLIT if split else 'plain'} | {seconds:.1f} | {cpu:.1f} | "
                         f"{max(r['peak_mb'] for r in rs):,.0f} | {rs[-1]['documents']:,} | "
                         f"{seconds / plain['seconds']:.2f}x | {cpu / plain['cpu_seconds']:.2f}x | {shares} |")
            if split:
                ratios[name] = cpu / plain["cpu_seconds"]
    if args.charts:
        chart = report.bar_chart(os.path.join(args.charts, "split.png"),
                                 "--split run CPU time / plain run CPU time (median)", list(ratios),
                                 list(ratios.values()), "x the plain run", (f"target {TARGET}x", TARGET))
        lines += ["", report.chart_link(args.results, chart)]
    print("\n".join(lines))
    report.append(args.results, lines + [""])


if __name__ == "__main__":
    main()
