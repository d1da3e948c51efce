"""One `finetune-etl prepare` run of the project in a folder, measured: wall and CPU time, the largest
process's peak (from /usr/bin/time -v) and the whole process tree's (sampled), and its manifest;
and the options of the benchmarks that set such runs side by side (a feature against a plain run)."""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

import psutil

from bench import report
from bench.media_memory_bench import tree_rss

POLL_S = 0.2


def add_comparison_arguments(parser: argparse.ArgumentParser, charts: bool = True) -> None:
    """--workdir, --runs, --code (another copy of the project, for a before/after), --results (and --charts)."""
    parser.add_argument("--workdir", default="/tmp/finetune-etl-bench")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--code", default=report.REPO, help="the project folder to run (default: this one)")
    parser.add_argument("--results", default=report.RESULTS)
    if charts:
        parser.add_argument("--charts", help="also draw the ratios as a PNG into this folder (default: no chart)")


def measured_prepare(args: list[str], out: str, code: str) -> dict:
    """`prepare ARGS --output OUT` run with the project in folder `code` (a fresh OUT each time) ->
    {seconds, cpu_seconds, peak_mb (largest process), tree_mb (the whole tree), manifest}."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "pipelines.cli", "prepare", *args, "--output", out]
    subprocess.run(["rm", "-rf", out], check=True)  # a new dataset each time, whatever version wrote the last one
    path = os.pathsep.join(filter(None, [code, os.environ.get("PYTHONPATH")]))
    log = out.rstrip("/") + ".log"
    started, tree = time.perf_counter(), 0
    with open(log, "wb") as stderr:  # a file, not a pipe: nothing blocks while the tree's memory is sampled
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=code,
                                env={**os.environ, "PYTHONPATH": path})
        process = psutil.Process(proc.pid)
        while proc.poll() is None:
            tree = max(tree, tree_rss(process))
            time.sleep(POLL_S)
    seconds = time.perf_counter() - started
    with open(log, errors="replace") as handle:
        text = handle.read()
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{text[-2000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", text).group(1)) for kind in ("User", "System"))
    with open(os.path.join(out, "manifest.json")) as handle:
        manifest = json.load(handle)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_kb / 1024, "tree_mb": tree / 2**20,
            "manifest": manifest}
