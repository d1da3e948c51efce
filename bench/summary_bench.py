"""Benchmark `finetune-etl summary` on a prepared dataset of N documents, against reading its columns with pyarrow.

    python -m bench.summary_bench --rows 1000000 [--layout labeled,scores,pairs] [--runs 5] [--bad-rows 1000]
                                  [--workdir /tmp/bench-summary] [--code DIR] [--results bench/RESULTS.md]

In: a row count and one or more layouts (those of bench.make_csv: labeled text,label with ~3,000 labels;
scores text,text,score, two-chunk documents; pairs query,document, labelled with the query's text, so
hundreds of thousands of labels). Each CSV is generated into WORKDIR (bench.scaling_bench.ensure_rows),
followed by --bad-rows rows with a field too many (1,000 dead letters by default: real inputs have some, and
summary groups them), and prepared once with default options (`--format both`: Parquet and docarray shards)
into WORKDIR/out/<layout>-<rows>rows-seed<seed>-bad<N>; both are reused while they are complete. Then, each `--runs` times:

  summary            finetune-etl summary OUT          the whole command in its own process
  summary --json     finetune-etl summary OUT --json
  read_table         python -c "pq.ParquetFile(shard).read(columns=COLUMNS)" for every shard of both kinds
  python             python -c pass                     interpreter start-up, for scale
  summarize()        pipelines.datasets.summary.summarize(OUT), in this process
  read_table()       the same reads, in this process

COLUMNS are the small columns summary may read (documents: label, score, modality and the media fields of
documents and chunks; dead letters: all but raw), whatever summary's code reads: the baseline stays the same
while summary changes. `finetune-etl` is the console script next to this Python (not a pyenv shim).

Out, per layout: a markdown table (median and fastest wall seconds, median CPU seconds (user + system, from
/usr/bin/time -v: steadier than wall time on a shared machine), peak RSS of the process per
bench.text_bench.measure, the median as a multiple of read_table's, and the first 12 hex digits of the
sha256 of what the command printed, so two versions can be checked for identical output), printed, and
appended with the command, date and machine to --results when given. `--code DIR` runs another copy of the
project (e.g. the previous version) on the same datasets, for a before/after comparison.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import statistics
import sys
import time

import pyarrow.parquet as pq

from bench import report
from bench.make_csv import LAYOUTS
from bench.scaling_bench import ensure_rows
from bench.text_bench import measure

CHUNK_FIELDS = ["modality", "mime_type", "width", "height"]
COLUMNS = {
    "documents": ["label", "score", "modality", "mime_type", "width", "height"]
                 + [f"chunks.list.element.{f}" for f in CHUNK_FIELDS],
    "dead_letters": ["source_file", "source_row", "stage", "reason_class", "reason"],
}
ETL = os.path.join(os.path.dirname(sys.executable), "finetune-etl")


def ensure_csv(workdir: str, layout: str, rows: int, seed: int, bad_rows: int) -> str:
    """The generated CSV of `layout` plus `bad_rows` rows with a field too many (dead letters, as real inputs
    have), WORKDIR/<layout>-<rows>rows-seed<seed>-bad<bad_rows>.csv, written unless present -> its path."""
    clean, _ = ensure_rows(workdir, layout, rows, seed)
    path = clean.removesuffix(".csv") + f"-bad{bad_rows}.csv"
    if not os.path.exists(path):
        shutil.copyfile(clean, path + ".tmp")
        with open(path + ".tmp", "a") as handle:
            handle.writelines(f"bad row {i},one,field,too many\n" for i in range(bad_rows))
        os.replace(path + ".tmp", path)
    return path


def ensure_dataset(args, layout: str) -> str:
    """WORKDIR/out/<the CSV's name>, prepared from ensure_csv's CSV unless complete -> its path."""
    csv_path = ensure_csv(args.workdir, layout, args.rows, args.seed, args.bad_rows)
    out = os.path.join(args.workdir, "out", os.path.basename(csv_path).removesuffix(".csv"))
    if os.path.exists(os.path.join(out, "_SUCCESS")):
        return out
    cmd = [ETL, "prepare", "--input", csv_path, "--output", out, "--dialect", "excel", "--layout", layout, "--overwrite"]
    print(f"preparing {out}: {shlex.join(cmd)}", flush=True)
    result = measure(cmd, os.path.join(args.workdir, "logs", f"prepare-{os.path.basename(out)}"), args.timeout)
    if not result["ok"]:
        sys.exit(f"prepare failed (rc={result['rc']}):\n{result['tail']}")
    print(f"  prepared in {result['wall']:.1f} s, peak {result['peak'] / 2**20:,.0f} MB", flush=True)
    return out


def shard_paths(out: str) -> dict[str, list[str]]:
    """The Parquet shards the dataset's manifest lists -> {documents|dead_letters: [local paths]}."""
    with open(os.path.join(out, "manifest.json")) as handle:
        shards = json.load(handle)["shards"]
    return {kind: [os.path.join(out, s["path"]) for s in shards[kind]] for kind in COLUMNS}


def read_columns(paths: dict[str, list[str]]) -> int:
    """The baseline: COLUMNS of every shard, one pyarrow.parquet.ParquetFile.read each -> rows read
    (pyarrow.parquet.read_table of a list of files cannot pick nested leaves: chunks.list.element.width)."""
    return sum(pq.ParquetFile(p).read(columns=COLUMNS[kind]).num_rows for kind in COLUMNS for p in paths[kind])


def commands(out: str, paths: dict[str, list[str]]) -> dict[str, list[str]]:
    """The whole-process variants: {name: argv}; read_table is read_columns in a bare Python."""
    baseline = ("import pyarrow.parquet as pq\n"
                f"for kind, columns in {COLUMNS!r}.items():\n"
                f"    for path in {paths!r}[kind]:\n"
                "        pq.ParquetFile(path).read(columns=columns)")
    return {"summary": [ETL, "summary", out], "summary --json": [ETL, "summary", out, "--json"],
            "read_table": [sys.executable, "-c", baseline], "python": [sys.executable, "-c", "pass"]}


def cpu_seconds(time_report: str) -> float:
    """User plus system seconds from a GNU time -v report (0 if absent)."""
    seconds = 0.0
    if os.path.exists(time_report):
        with open(time_report) as handle:
            for line in handle:
                if line.strip().startswith(("User time (seconds)", "System time (seconds)")):
                    seconds += float(line.rsplit(":", 1)[1])
    return seconds


def run_commands(cmds: dict[str, list[str]], log_dir: str, runs: int, timeout: float) -> dict[str, dict]:
    """Each command `runs` times, interleaved so that load drifts hit all alike -> {name: {walls, cpus, peak,
    sha, load}}."""
    results = {name: {"walls": [], "cpus": [], "peak": 0, "sha": None, "load": os.getloadavg()[0]} for name in cmds}
    for i in range(runs):
        for name, cmd in cmds.items():
            log = os.path.join(log_dir, f"{name.replace(' ', '')}-{i}")
            r = measure(cmd, log, timeout)
            if not r["ok"]:
                sys.exit(f"{shlex.join(cmd)} failed (rc={r['rc']}):\n{r['tail']}")
            with open(log + ".out", "rb") as handle:
                results[name]["sha"] = hashlib.sha256(handle.read()).hexdigest()[:12]
            results[name]["walls"].append(r["wall"])
            results[name]["cpus"].append(cpu_seconds(log + ".time"))
            results[name]["peak"] = max(results[name]["peak"], r["peak"])
    return results


def run_in_process(out: str, paths: dict[str, list[str]], runs: int) -> dict[str, dict]:
    """summarize(OUT) and the baseline read, `runs` times each in this process -> {name: {walls, sha}}."""
    from pipelines.datasets.summary import summarize

    calls = {"summarize()": lambda: json.dumps(summarize(out)), "read_table()": lambda: str(read_columns(paths))}
    results = {}
    for name, call in calls.items():
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            value = call()
            walls.append(time.perf_counter() - t0)
        results[name] = {"walls": walls, "cpus": None, "peak": None,
                         "sha": hashlib.sha256(value.encode()).hexdigest()[:12]}
    return results


def table(results: dict[str, dict]) -> str:
    """Results -> markdown; x read_table: the median against the read_table median of the same kind
    (process against process, in-process against in-process)."""
    lines = ["| variant | median s | fastest s | CPU s | peak RSS MB | x read_table | output sha256 |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, r in results.items():
        base = results["read_table()" if name.endswith("()") else "read_table"]
        median = statistics.median(r["walls"])
        peak = f"{r['peak'] / 2**20:,.0f}" if r["peak"] else "-"
        cpu = f"{statistics.median(r['cpus']):.2f}" if r["cpus"] else "-"
        lines.append(f"| {name} | {median:.3f} | {min(r['walls']):.3f} | {cpu} | {peak} "
                     f"| {median / statistics.median(base['walls']):.1f}x | {r['sha'] if name != 'python' else '-'} |")
    return "\n".join(lines)


def bench_layout(args, layout: str) -> list[str]:
    """Prepare (or reuse) one layout's dataset, time the variants -> the markdown lines of its section."""
    out = ensure_dataset(args, layout)
    paths = shard_paths(out)
    documents = sum(pq.ParquetFile(p).metadata.num_rows for p in paths["documents"])
    log_dir = os.path.join(args.workdir, "logs", f"summary-{layout}-{args.rows}")
    os.makedirs(log_dir, exist_ok=True)
    results = run_commands(commands(out, paths), log_dir, args.runs, args.timeout)
    results.update(run_in_process(out, paths, args.runs))
    md = table(results)
    loads = ", ".join(f"{r['load']:.1f}" for r in results.values() if "load" in r)
    dead = sum(pq.ParquetFile(p).metadata.num_rows for p in paths["dead_letters"])
    head = (f"### {layout}: {documents:,} documents in {len(paths['documents'])} Parquet shards, "
            f"{sum(map(os.path.getsize, paths['documents'])) / 1e6:,.0f} MB; {dead:,} dead letters")
    print(f"\n{head}\n\n{md}\n", flush=True)
    return [head, "", f"`{out}`; 1-minute load average at the start of each variant: {loads}", "", md, ""]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="CSV rows, i.e. about as many documents")
    ap.add_argument("--layout", default="labeled,scores,pairs", help=f"one or more of {','.join(LAYOUTS)}, comma-separated")
    ap.add_argument("--runs", type=int, default=5, help="runs per variant; the median and the fastest are reported")
    ap.add_argument("--workdir", default="/tmp/bench-summary")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bad-rows", type=int, default=1000,
                    help="rows with a field too many added to each CSV, to become dead letters")
    ap.add_argument("--results", help="markdown file to append the results to (bench/RESULTS.md); default: print only")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run before it is killed")
    ap.add_argument("--code", help="import the project from this folder instead (first on PYTHONPATH): e.g. a copy "
                                   "of an older version, to compare two versions minutes apart on the same machine")
    args = ap.parse_args(argv)
    if args.code:
        code = os.path.abspath(args.code)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [code, os.environ.get("PYTHONPATH")]))
        sys.path.insert(0, code)
    layouts = [name.strip() for name in args.layout.split(",") if name.strip()]
    if not layouts or any(name not in LAYOUTS for name in layouts):
        ap.error(f"--layout {args.layout!r}: give one or more of {', '.join(LAYOUTS)}, comma-separated")
    command = shlex.join(["python", "-m", "bench.summary_bench", *(sys.argv[1:] if argv is None else argv)])
    os.makedirs(os.path.join(args.workdir, "logs"), exist_ok=True)
    machine = report.machine()
    section = [f"## {report.now()} - summary, {args.rows:,} rows", "", f"Command: `{command}`  ",
               f"Machine: {machine}  ", f"Median and fastest of {args.runs} runs, interleaved.", ""]
    for layout in layouts:
        section += bench_layout(args, layout)
    if args.results:
        report.append(args.results, section)
        print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
