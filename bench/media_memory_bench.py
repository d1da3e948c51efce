"""Memory and throughput of a media run as it grows: labeled photos through `finetune-etl prepare`.

    python -m bench.media_memory_bench --photos 10000,40000 [--workdir /tmp/media-memory] [--keep]
    python -m bench.media_memory_bench --photos 10000 --distinct 10000 --loop   # against cores x a Pillow loop

--distinct: how many different photos the rows name (default 300: most rows repeat a photo, so most documents
are found to be duplicates; 0 = every row its own photo). --loop: before each run, time the limit on the same
files, one `Image.open(p).load()` loop per core over its share of the rows (bench.media_loops), and add the
throughput ratio to the table.

For each size, makes the photos (bench.make_photos), runs `finetune-etl prepare --input CSV --is-labeled
--output OUT --overwrite [--extra ...]` in a subprocess and samples the RSS of its whole process tree
(decode children included) every 0.2 s. The run is killed past --max-rss-gb. Prints a markdown table:
wall, images/s, peak RSS, staged objects per 10^4 documents, and the peak's growth from the first size;
each run's RSS samples go to WORKDIR/rss-N.tsv. Outputs are deleted unless --keep.
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import psutil

from bench.make_photos import make_photos

POLL_S = 0.2
GB = 1 << 30


def tree_rss(process: psutil.Process) -> int:
    """RSS of a process and all its descendants, in bytes (processes that vanish meanwhile count 0)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_sampled(cmd: list[str], samples_path: str, max_rss: float) -> dict:
    """Run cmd, sampling its tree's RSS; rc ("rss-limit" when killed), wall seconds, peak bytes."""
    start, peak, rc = time.perf_counter(), 0, None
    with open(samples_path, "w") as samples, open(samples_path + ".err", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        ps = psutil.Process(proc.pid)
        while rc is None:
            rss = tree_rss(ps)
            peak = max(peak, rss)
            samples.write(f"{time.perf_counter() - start:.1f}\t{rss}\n")
            try:
                rc = proc.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                if rss > max_rss:
                    for p in [*ps.children(recursive=True), ps]:
                        try:
                            p.kill()
                        except psutil.Error:
                            pass
                    proc.wait()
                    rc = "rss-limit"
    return {"rc": rc, "wall": time.perf_counter() - start, "peak": peak}


def staged_objects(output: str) -> int | None:
    """The manifest's staged_objects count, when the run wrote one."""
    try:
        with open(os.path.join(output, "manifest.json")) as f:
            manifest = json.load(f)
    except OSError:
        return None
    counts = manifest.get("counts", {})
    return counts.get("group.staged_objects", counts.get("staged_objects"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default="10000,40000", help="comma-separated sizes")
    parser.add_argument("--workdir", default="/tmp/media-memory")
    parser.add_argument("--max-rss-gb", type=float, default=16.0)
    parser.add_argument("--keep", action="store_true", help="keep the outputs")
    parser.add_argument("--extra", default="", help="more prepare options, e.g. '--format parquet'")
    parser.add_argument("--distinct", type=int, default=300, help="different photos (0: one per row)")
    parser.add_argument("--loop", action="store_true", help="also time cores x a Pillow loop over the same files")
    args = parser.parse_args(argv)
    etl = shutil.which("finetune-etl") or "finetune-etl"
    rows = []
    for photos in (int(n) for n in args.photos.split(",")):
        distinct = args.distinct or photos
        csv_path = make_photos(photos, os.path.join(args.workdir, f"photos-{distinct}"), distinct)
        loop = pillow_loops(csv_path, os.path.join(args.workdir, "loop")) if args.loop else None
        output = os.path.join(args.workdir, f"out-{photos}")
        cmd = [etl, "prepare", "--input", csv_path, "--is-labeled", "--output", output, "--overwrite",
               *shlex.split(args.extra)]
        print("$", shlex.join(cmd), file=sys.stderr, flush=True)
        result = run_sampled(cmd, os.path.join(args.workdir, f"rss-{photos}.tsv"), args.max_rss_gb * GB)
        objects = staged_objects(output) if result["rc"] == 0 else None
        rows.append((photos, result, objects, loop))
        print(f"{photos}: {result} staged_objects={objects} loop={loop}", file=sys.stderr, flush=True)
        if not args.keep:
            shutil.rmtree(output, ignore_errors=True)
    first_peak = rows[0][1]["peak"]
    cores = os.cpu_count() or 1
    print(f"| photos | rc | wall s | images/s | peak RSS GiB | peak vs first | staged objects / 10^4 docs "
          f"| {cores} x Pillow loop, wall s | x the loops |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for photos, r, objects, loop in rows:
        per = f"{objects * 1e4 / photos:.0f}" if objects is not None else "-"
        versus = (f"{loop:.2f} | {loop / r['wall']:.2f}x" if loop and r["rc"] == 0 else "- | -")
        print(f"| {photos} | {r['rc']} | {r['wall']:.1f} | {photos / r['wall']:.0f} | {r['peak'] / GB:.2f} "
              f"| {r['peak'] / first_peak:.2f}x | {per} | {versus} |")


def pillow_loops(csv_path: str, workdir: str) -> float:
    """Wall seconds of one bench.media_loops Pillow loop per core, run at once, each over its share of the
    CSV's rows (the limit a run is measured against; it also brings the files into the page cache)."""
    os.makedirs(workdir, exist_ok=True)
    with open(csv_path) as csv:
        lines = csv.readlines()[1:]
    cores = os.cpu_count() or 1
    shares = []
    for k in range(cores):
        shares.append(os.path.join(workdir, f"share-{k}.csv"))
        with open(shares[-1], "w") as share:
            share.writelines(lines[k::cores])
    start = time.perf_counter()
    loops = [subprocess.Popen([sys.executable, "-m", "bench.media_loops", "--loop-images", share]) for share in shares]
    if any(loop.wait() for loop in loops):
        raise SystemExit("a Pillow loop failed")
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
