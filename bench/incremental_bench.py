"""What --incremental-from saves: a run over photos of which 1% or 10% changed since the previous run,
from scratch and incrementally (reusing the previous dataset), side by side.

    python -m bench.incremental_bench --photos 5000 [--changed 1,10] [--workdir DIR] [--runs 1] [--code DIR]
        [--results FILE] [--charts DIR]

In: a photo count. PHOTOS + the most changed rows' worth of distinct 640x480 JPEGs (bench.make_photos'
gradients, each stamped with its own number so that no two are the same document) are written once into
WORKDIR/incremental-photos/ and served by a threaded http.server on 127.0.0.1 started here (its CPU is on
the same cores). The previous dataset is a run over rows 0..PHOTOS-1; for each percentage P, the last P% of
the rows name new photos instead, and that CSV is prepared from scratch and with `--incremental-from` the
previous dataset, alternating, as subprocesses under /usr/bin/time -v (`--code DIR` runs another copy of
the project). Every run: `--is-labeled --format parquet --allow-private-network`, defaults otherwise.

Out: a markdown table (median wall and CPU seconds, peak memory of the largest process and of the process
tree sampled every 0.2 s with psutil, documents, documents_reused, files the server sent during the run,
whether the documents/ shards are byte-identical to the run from scratch, the incremental run's wall and
CPU time as multiples of the run from scratch), printed and appended to --results with the command; with
--charts, a bar chart of the ratios.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import http.server
import io
import os
import shlex
import statistics
import sys
import threading

import numpy as np
from PIL import Image

from bench import report
from bench.loopback_server import LoopbackServer
from bench.make_photos import LABELS, QUALITY, distinct_photo
from bench.measured_run import add_comparison_arguments, measured_prepare

BASES = 64  # distinct gradients; each photo is one of them with its own number stamped in a corner
STAMP = 8  # pixels per bit of the stamp


def stamped_photo(index: int, bases: dict) -> bytes:
    """JPEG bytes of photo `index`: a gradient with the index's 16 bits drawn as black and white squares."""
    if index % BASES not in bases:
        bases[index % BASES] = np.asarray(distinct_photo(index % BASES))
    pixels = bases[index % BASES].copy()
    for bit in range(16):
        pixels[:STAMP, bit * STAMP:(bit + 1) * STAMP] = 255 if (index >> bit) & 1 else 0
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, "JPEG", quality=QUALITY)
    return data.getvalue()


def ensure_photos(folder: str, count: int) -> None:
    """folder/NNNNNN.jpg for photos 0..count-1 (files already there are kept)."""
    os.makedirs(folder, exist_ok=True)
    bases: dict = {}
    for index in range(count):
        path = os.path.join(folder, f"{index:06d}.jpg")
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as handle:
                handle.write(stamped_photo(index, bases))
            os.replace(path + ".tmp", path)


def write_csv(path: str, base_url: str, photos: list[int]) -> str:
    """A `url,label` CSV naming the given photos (labels by row, so a changed row keeps its label)."""
    with open(path, "w") as handle:
        handle.writelines(f"{base_url}/{p:06d}.jpg,{LABELS[row % len(LABELS)]}\n" for row, p in enumerate(photos))
    return path


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests[self.path] += 1
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(root: str):
    """A threaded HTTP server on 127.0.0.1 serving `root`, counting GET requests per path -> the server
    (`url`, `requests`), for the duration of the block."""
    server = LoopbackServer(("127.0.0.1", 0), functools.partial(_CountingHandler, directory=root))
    server.lock, server.requests = threading.Lock(), collections.Counter()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def run_once(csv: str, out: str, previous: str | None, code: str, server) -> dict:
    """One prepare run -> {seconds, cpu_seconds, peak_mb (largest process), tree_mb, documents, reused, sent}."""
    args = ["--input", csv, "--is-labeled", "--format", "parquet", "--allow-private-network"]
    args += ["--incremental-from", previous] if previous else []
    with server.lock:
        before = sum(n for p, n in server.requests.items() if p.endswith(".jpg"))
    run = measured_prepare(args, out, code)
    with server.lock:
        sent = sum(n for p, n in server.requests.items() if p.endswith(".jpg")) - before
    counts = run.pop("manifest")["counts"]
    return {**run, "documents": counts["documents_written"], "reused": counts.get("documents_reused", 0), "sent": sent}


def same_documents(a: str, b: str) -> bool:
    """Whether two datasets' documents/ folders hold the same file names with the same bytes."""
    names = sorted(os.listdir(os.path.join(a, "documents")))
    if names != sorted(os.listdir(os.path.join(b, "documents"))):
        return False
    return all(open(os.path.join(a, "documents", n), "rb").read() == open(os.path.join(b, "documents", n), "rb").read()
               for n in names)


def table_rows(name: str, results: dict, identical: bool) -> tuple[list[str], float]:
    """One case's results ({"scratch": [...], "incremental": [...]}) -> (its markdown rows, the incremental
    run's median wall time / the run from scratch's)."""
    medians = {run: {kind: statistics.median(r[kind] for r in rs) for kind in ("seconds", "cpu_seconds")}
               for run, rs in results.items()}
    lines = []
    for run, rs in results.items():
        wall, cpu = (medians[run][kind] / medians["scratch"][kind] for kind in ("seconds", "cpu_seconds"))
        last = rs[-1]
        lines.append(f"| {name} | {run} | {medians[run]['seconds']:.1f} | {medians[run]['cpu_seconds']:.1f} | "
                     f"{max(r['peak_mb'] for r in rs):,.0f} | {max(r['tree_mb'] for r in rs):,.0f} | "
                     f"{last['documents']:,} | {last['reused']:,} | {last['sent']:,} | "
                     f"{'yes' if identical else 'NO'} | {wall:.2f}x | {cpu:.2f}x |")
    return lines, medians["incremental"]["seconds"] / medians["scratch"]["seconds"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=5000)
    parser.add_argument("--changed", default="1,10", help="percentages of rows that name new photos")
    add_comparison_arguments(parser)
    args = parser.parse_args(argv)
    code = os.path.abspath(args.code)
    changed = [float(p) for p in args.changed.split(",")]
    new = {p: max(1, round(args.photos * p / 100)) for p in changed}
    photos = os.path.join(args.workdir, "incremental-photos")
    ensure_photos(photos, args.photos + max(new.values()))
    lines = [f"## Incremental re-runs — {report.now()}: --incremental-from against a run from scratch", "",
             f"`python -m bench.incremental_bench {shlex.join(argv if argv is not None else sys.argv[1:])}` on "
             f"{report.machine()}", "",
             "| case | run | median s | median CPU s | peak MB (largest process) | peak MB (process tree) | documents "
             "| documents_reused | files sent by the server | documents/ identical | incremental / scratch (wall) "
             "| incremental / scratch (CPU) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    ratios = {}
    with serve(photos) as server:
        previous = os.path.join(args.workdir, "incremental-previous")
        rows = list(range(args.photos))
        run_once(write_csv(previous + ".csv", server.url, rows), previous, None, code, server)
        for p in changed:
            name = f"{args.photos:,} photos, {p:g}% changed ({new[p]:,} rows)"
            csv = write_csv(os.path.join(args.workdir, f"incremental-{p:g}.csv"), server.url,
                            rows[:args.photos - new[p]] + list(range(args.photos, args.photos + new[p])))
            results = {"scratch": [], "incremental": []}
            outs = {run: os.path.join(args.workdir, f"incremental-out-{p:g}-{run}") for run in results}
            for _ in range(args.runs):
                for run in results:
                    results[run].append(run_once(csv, outs[run], previous if run == "incremental" else None, code,
                                                 server))
            rows_md, ratios[f"{p:g}% changed"] = table_rows(name, results, same_documents(*outs.values()))
            lines += rows_md
    if args.charts:
        chart = report.bar_chart(os.path.join(args.charts, "incremental.png"),
                                 "--incremental-from run time / run from scratch (median wall)", list(ratios),
                                 list(ratios.values()), "x the run from scratch", ("from scratch", 1.0))
        lines += ["", report.chart_link(args.results, chart)]
    print("\n".join(lines))
    report.append(args.results, lines + [""])


if __name__ == "__main__":
    main()
