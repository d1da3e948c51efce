"""One `finetune-etl prepare` run of the project in a folder, measured: wall and CPU time, the largest
process's peak (from /usr/bin/time -v) and the whole process tree's (sampled), and its manifest's counts."""
import json
import os
import re
import shlex
import subprocess
import sys
import time

import psutil

from bench.media_memory_bench import tree_rss

POLL_S = 0.2


def measured_prepare(args: list[str], out: str, code: str) -> dict:
    """`prepare ARGS --output OUT` run with the project in folder `code` (a fresh OUT each time) ->
    {seconds, cpu_seconds, peak_mb (largest process), tree_mb (the whole tree), counts (the manifest's)}."""
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
        counts = json.load(handle)["counts"]
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_kb / 1024, "tree_mb": tree / 2**20,
            "counts": counts}
