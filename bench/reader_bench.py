"""Benchmark the training readers, `pipelines.stream` and `pipelines.TrainingDataset` in a torch DataLoader,
against pyarrow's own batch reader on the same files.

    python -m bench.reader_bench --rows 1000000 [--layout labeled] [--runs 5] [--batch-size 1024] [--columns id,text]
                                 [--images 0] [--shuffle-buffer 10000] [--workdir /tmp/bench-reader]
                                 [--results bench/RESULTS.md]

Text case (unless --rows 0). In: a row count and a layout of bench.make_csv. The CSV is generated into WORKDIR
(bench.scaling_bench.ensure_rows) and prepared once with `--format parquet` into
WORKDIR/out/<layout>-<rows>rows-seed<seed>; both are reused while complete. Then, in this process, each variant
reads every document (all columns, or --columns) in batches of --batch-size, `--runs` times, interleaved so that
load drifts hit all alike:

  pyarrow iter_batches   pyarrow.parquet.ParquetFile(shard).iter_batches(batch_size, columns) over the manifest's shards
  stream()               pipelines.stream(OUT, columns=columns, batch_size), file order
  stream(shuffle_seed)   the same with shuffle_seed=0 and --shuffle-buffer, a new epoch each run

Images case (with --images N). In: N distinct 640x480 JPEGs (bench.incremental_bench's stamped gradients),
written into WORKDIR/photos/, named with labels in a `path,label` CSV and prepared once with `--header yes
--is-labeled --format parquet` into WORKDIR/out/photos-<N> (all reused while complete). Each variant decodes every image
with Pillow, 64 samples ({id, label, image}) at a time given to a collate_fn that returns their sizes (no
tensors), `--runs` times, interleaved (bench.reader_images):

  iter_batches + Pillow, 1 process     iter_batches(64, columns=[id, label, blob]) over the manifest's shards
  iter_batches + Pillow, 2 processes   the same in 2 new processes, each taking every 2nd row group: the
                                       baseline, on as many cores as the loaders
  DataLoader(TrainingDataset)          DataLoader(TrainingDataset(OUT), batch_size=64, num_workers=2), images
                                       decoded in the workers
  DataLoader(TrainingDataset(shuffle_seed=0, shuffle_buffer))   the same shuffled, a new epoch each run

Out: per case, a markdown table (median and best rows/s or images/s by wall time, median CPU seconds of this
process and the children it waited for, for images the peak RSS of this process and its descendants summed,
sampled every 0.1 s, and the median's ratio to the baseline's (iter_batches; for images, the 2-process one),
by wall time and by CPU time: CPU time is steadier on a shared machine), printed, and appended with the
command, date and machine to --results under "Training readers, N rows" or "Training readers, N images".
The target is a ratio of at least 0.8.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time

import psutil
import pyarrow.parquet as pq

from bench import reader_images, report
from bench.make_csv import LAYOUTS
from bench.media_memory_bench import tree_rss
from bench.scaling_bench import ensure_rows
from bench.summary_bench import ETL

TARGET = 0.8


def ensure_dataset(workdir: str, layout: str, rows: int, seed: int) -> str:
    """WORKDIR/out/<layout>-<rows>rows-seed<seed>, prepared with --format parquet unless complete -> its path."""
    os.makedirs(workdir, exist_ok=True)
    csv_path, _ = ensure_rows(workdir, layout, rows, seed)
    out = os.path.join(workdir, "out", os.path.basename(csv_path).removesuffix(".csv"))
    if not os.path.exists(os.path.join(out, "_SUCCESS")):
        cmd = [ETL, "prepare", "--input", csv_path, "--output", out, "--dialect", "excel", "--layout", layout,
               "--format", "parquet", "--overwrite"]
        print(f"preparing {out}: {shlex.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def variants(out: str, batch_size: int, shuffle_buffer: int, columns: list[str] | None) -> dict:
    """{name: read(run) -> rows read}: the baseline and the stream's two orders, each reading `columns` (None:
    all)."""
    from pipelines import stream

    with open(os.path.join(out, "manifest.json")) as handle:
        shards = [os.path.join(out, s["path"]) for s in json.load(handle)["shards"]["documents"]]

    def iter_batches(run: int) -> int:
        return sum(b.num_rows for path in shards
                   for b in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns))

    def in_file_order(run: int) -> int:
        return sum(b.num_rows for b in stream(out, columns=columns, batch_size=batch_size))

    def shuffled(run: int) -> int:
        batches = stream(out, columns=columns, batch_size=batch_size, shuffle_seed=0, shuffle_buffer=shuffle_buffer)
        batches.set_epoch(run)
        return sum(b.num_rows for b in batches)

    return {"pyarrow iter_batches": iter_batches, "stream()": in_file_order,
            f"stream(shuffle_seed=0, shuffle_buffer={shuffle_buffer:,})": shuffled}


def cpu_seconds() -> float:
    """User and system CPU seconds of this process (time.process_time: os.times() counts in 10 ms ticks, which
    a tiny read can fall within) and of the children it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def peak_rss(peaks: list[int], every: float = 0.1):
    """Appends to `peaks`, when the block ends, the largest summed RSS (bytes) of this process and its
    descendants, sampled every `every` seconds by a thread while the block runs."""
    done, peak = threading.Event(), [tree_rss(psutil.Process())]

    def sample() -> None:
        while not done.wait(every):
            peak[0] = max(peak[0], tree_rss(psutil.Process()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        peaks.append(peak[0])


def measure(reads: dict, runs: int, sample_rss: bool = False) -> dict[str, dict]:
    """Each read `runs` times, interleaved -> {name: {rows, walls, cpus (cpu_seconds), peaks (peak_rss; empty
    unless sample_rss)}}."""
    results = {name: {"rows": 0, "walls": [], "cpus": [], "peaks": []} for name in reads}
    for run in range(runs):
        for name, read in reads.items():
            r = results[name]
            with peak_rss(r["peaks"]) if sample_rss else contextlib.nullcontext():
                wall, cpu = time.perf_counter(), cpu_seconds()
                r["rows"] = read(run)
                r["walls"].append(time.perf_counter() - wall)
                r["cpus"].append(cpu_seconds() - cpu)
    return results


def table(results: dict[str, dict], base: str | None = None, against: str = "iter_batches", unit: str = "rows",
          peaks: bool = False) -> str:
    """Results -> markdown, each variant's medians against variant `base`'s (default: the first; `against` names
    it in the header), in `unit` per second; with peaks, a column of each variant's peak RSS."""
    base = base or next(iter(results))
    lines = [f"| reader | {unit} | median {unit}/s | best {unit}/s | median CPU s |{' peak RSS MB |' if peaks else ''}"
             f" x {against} (wall) | x {against} (CPU) |", "|---|" + "---:|" * (6 + peaks)]
    walls, cpus = statistics.median(results[base]["walls"]), statistics.median(results[base]["cpus"])
    for name, r in results.items():
        wall, cpu = statistics.median(r["walls"]), statistics.median(r["cpus"])
        peak = f" {max(r['peaks']) / 2**20:,.0f} |" if peaks else ""
        lines.append(f"| {name} | {r['rows']:,} | {r['rows'] / wall:,.0f} | {r['rows'] / min(r['walls']):,.0f} "
                     f"| {cpu:.2f} |{peak} {report.ratio(walls, wall)} | {report.ratio(cpus, cpu)} |")
    return "\n".join(lines)


def verdict(results: dict[str, dict]) -> str:
    """Which variants reach TARGET times the baseline's rows/s (median wall time)."""
    names = list(results)
    base = statistics.median(results[names[0]]["walls"])
    ratios = {name: base / statistics.median(results[name]["walls"]) for name in names[1:]}
    return "; ".join(f"{name}: {ratio:.2f}x, target {TARGET}x {'met' if ratio >= TARGET else 'missed'}"
                     for name, ratio in ratios.items())


def text_case(args, command: str) -> None:
    """The text readers on --rows rows of --layout: measured, printed and appended to --results."""
    out = ensure_dataset(args.workdir, args.layout, args.rows, args.seed)
    files = [os.path.join(out, "documents", name) for name in sorted(os.listdir(os.path.join(out, "documents")))]
    groups = sum(pq.ParquetFile(path).metadata.num_row_groups for path in files)
    machine = report.machine()
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    results = measure(variants(out, args.batch_size, args.shuffle_buffer, columns), args.runs)
    md, result = table(results), verdict(results)
    head = (f"{args.layout}: {args.rows:,} rows in {len(files)} Parquet shards, {groups} row groups, "
            f"{sum(map(os.path.getsize, files)) / 1e6:,.0f} MB; batches of {args.batch_size:,} rows, "
            f"{'columns ' + ', '.join(columns) if columns else 'all columns'}")
    print(f"\n{head}\n\n{md}\n\n{result}", flush=True)
    report.append(args.results, [f"## {report.now()} - Training readers, {args.rows:,} rows", "",
                                 f"Command: `{command}`  ", f"Machine: {machine}  ",
                                 f"{head}; median and best of {args.runs} runs, interleaved, in one process.", "",
                                 md, "", result, ""])
    print(f"appended to {args.results}")


def images_case(args, command: str) -> None:
    """The image readers on --images photos: measured, printed and appended to --results."""
    out = reader_images.ensure_dataset(args.workdir, args.images)
    head = reader_images.describe(out)
    machine = report.machine()
    results = measure(reader_images.variants(out, args.shuffle_buffer), args.runs, sample_rss=True)
    md, result = table(results, reader_images.SPLIT, f"{reader_images.WORKERS} processes", "images", peaks=True), reader_images.verdict(results, TARGET)
    print(f"\n{head}\n\n{md}\n\n{result}", flush=True)
    report.append(args.results, [f"## {report.now()} - Training readers, {args.images:,} images", "",
                                 f"Command: `{command}`  ", f"Machine: {machine}  ",
                                 f"{head}; median and best of {args.runs} runs, interleaved. CPU seconds are this "
                                 "process's and its children's (workers, pool processes); peak RSS is the sum over "
                                 "this process and its descendants (shared pages counted in each), sampled every "
                                 "0.1 s.", "", md, "", result, ""])
    print(f"appended to {args.results}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="CSV rows, i.e. documents (0: no text case)")
    ap.add_argument("--images", type=int, default=0, help="distinct photos of the images case (0: none)")
    ap.add_argument("--layout", choices=LAYOUTS, default="labeled")
    ap.add_argument("--runs", type=int, default=5, help="runs per variant; the median and the best are reported")
    ap.add_argument("--batch-size", type=int, default=1024, help="rows per batch of the text case")
    ap.add_argument("--shuffle-buffer", type=int, default=10_000)
    ap.add_argument("--columns", help="comma-separated columns the text case reads (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="the CSV generator's seed")
    ap.add_argument("--workdir", default="/tmp/bench-reader")
    ap.add_argument("--results", default=report.RESULTS, help="markdown file the results are appended to")
    args = ap.parse_args(argv)
    command = shlex.join(["python", "-m", "bench.reader_bench", *(sys.argv[1:] if argv is None else argv)])
    if args.rows > 0:
        text_case(args, command)
    if args.images > 0:
        images_case(args, command)

if __name__ == "__main__":
    main()
