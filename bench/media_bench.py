"""Media benchmark: our pipeline on real images and meshes against plain single-process loops.

    python -m bench.media_bench [--copies 20] [--only images,http,meshes,sampling] [--workdir /tmp/bench-media]

Replicates the loadable images and meshes of ../shared/data (SOURCES.md lists which load) `--copies`
times into the workdir, writes labeled CSVs, and measures, each variant in its own subprocess:

  images    the pipeline with --convert-to-blob, the same resizing to 224, the same with two processes,
            the same decoding in the worker itself (--decode-timeout 0: no decode sandbox process);
            a Pillow loop (open + load), a Pillow loop that also resizes to 224; the limit is
            cores x the Pillow loop's single-thread rate
  http      the same images served by a threaded http.server on 127.0.0.1 started here: the pipeline
            (--allow-private-network) with --convert-to-blob and resizing to 224, against a loop of
            urllib GET + Pillow load; the limit is cores x that loop's rate
  meshes    the pipeline (2048-point clouds), with two processes, without the decode sandbox, and docarray's former way,
            `trimesh.load(path, force='mesh').sample(2048)` in a loop
  sampling  in this process, the sampling step alone on meshes loaded once: transforms.media.meshes'
            sample_point_cloud against trimesh's `sample`, in points/s

The loops are in bench.media_loops. Each pipeline's files/s is also given after start-up: files / (its wall -
the wall of the same pipeline on one image), the rate once interpreter, Beam and decode children are up.

Out: a markdown table appended to --results with the command, date and machine (with load averages), and
PNG bar charts (media-images.png, media-meshes.png) in --charts, linked from it.
"""
import argparse
import contextlib
import functools
import http.server
import os
import shlex
import shutil
import sys
import threading

from bench import report
from bench.loopback_server import LoopbackServer
from bench.media_loops import POINTS, sampling_rates
from bench.text_bench import measure

REPO = report.REPO
DATA = os.path.join(REPO, "..", "shared", "data")
BAD_IMAGES = {"broken.png", "truncated_jpeg.jpg", "truncated_image.png", "truncated_end_chunk.png",
              "decompression_bomb.gif", "seek_too_large.tif", "hopper_unknown_pixel_mode.tif"}
BAD_MESHES = {"empty.stl", "empty.obj", "empty.ply", "TestScene.gltf"}
GROUPS = ("images", "http", "meshes", "sampling")


def replicate(data: str, kind: str, bad: set, copies: int, workdir: str) -> list[str]:
    """Copies of every loadable file of DATA/<kind> -> their paths."""
    source = os.path.join(data, kind)
    names = sorted(n for n in os.listdir(source) if n not in bad and not n.endswith(".md"))
    target = os.path.join(workdir, kind)
    os.makedirs(target, exist_ok=True)
    paths = []
    for copy in range(copies):
        for name in names:
            path = os.path.join(target, f"{copy:03d}-{name}")
            if not os.path.exists(path):
                shutil.copyfile(os.path.join(source, name), path)
            paths.append(path)
    return paths


def write_list(items: list[str], path: str) -> str:
    """A labeled CSV: item,label (the label is the file's name without the copy number)."""
    with open(path, "w") as handle:
        handle.writelines(f"{item},{item.rsplit('/', 1)[1].split('-', 1)[1]}\n" for item in items)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(root: str):
    """A threaded HTTP server on 127.0.0.1 serving `root` -> its base URL, for the duration of the block."""
    server = LoopbackServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pipeline(csv_path: str, out: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.prepare", "--input", csv_path, "--output", out, "--overwrite",
            "--is-labeled", "--format", "parquet", *extra]


def loop(flag: str, list_path: str) -> list[str]:
    return [sys.executable, "-m", "bench.media_loops", flag, list_path]


MP2 = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")
STARTUP, STARTUP_MP2 = "start-up: pipeline on 1 image", "start-up: pipeline on 1 image, 2 processes"
STARTUP_NO_SANDBOX = "start-up: pipeline on 1 image, --decode-timeout 0"


def plan(groups: set, images: str, http_images: str, meshes: str, one_image: str, out) -> dict[str, tuple[str, list[str]]]:
    """{variant: (kind, command)} for the groups asked for; kind `start-up` runs the pipeline on one image, to
    tell the fixed start-up cost (interpreter, Beam, the first decode child) from the per-file rate."""
    runs = {}
    if groups & {"images", "http", "meshes"}:
        runs.update({
            STARTUP: ("start-up", pipeline(one_image, out("startup"), "--convert-to-blob")),
            STARTUP_MP2: ("start-up", pipeline(one_image, out("startup-mp"), *MP2)),
            STARTUP_NO_SANDBOX: ("start-up", pipeline(one_image, out("startup-nosandbox"), "--decode-timeout", "0")),
        })
    if "images" in groups:
        runs.update({
            "images: pipeline, --convert-to-blob": ("images", pipeline(images, out("images"), "--convert-to-blob")),
            "images: pipeline, --image-size 224": ("images", pipeline(images, out("images224"), "--image-size", "224")),
            "images: pipeline, 2 processes": ("images", pipeline(images, out("images-mp"), *MP2)),
            "images: pipeline, --decode-timeout 0 (no decode sandbox)": (
                "images", pipeline(images, out("images-nosandbox"), "--decode-timeout", "0")),
            "images: Pillow loop": ("images", loop("--loop-images", images)),
            "images: Pillow loop, resize 224": ("images", loop("--loop-images-224", images)),
        })
    if "http" in groups:
        http = ("--allow-private-network", "--convert-to-blob")
        runs.update({
            "http: pipeline, --convert-to-blob": ("images", pipeline(http_images, out("http"), *http)),
            "http: pipeline, --image-size 224": ("images", pipeline(http_images, out("http224"), *http, "--image-size", "224")),
            "http: urllib + Pillow loop": ("images", loop("--loop-http-images", http_images)),
        })
    if "meshes" in groups:
        runs.update({
            "meshes: pipeline": ("meshes", pipeline(meshes, out("meshes"))),
            "meshes: pipeline, 2 processes": ("meshes", pipeline(meshes, out("meshes-mp"), *MP2)),
            "meshes: pipeline, --decode-timeout 0 (no decode sandbox)": (
                "meshes", pipeline(meshes, out("meshes-nosandbox"), "--decode-timeout", "0")),
            "meshes: trimesh load+sample loop": ("meshes", loop("--loop-meshes", meshes)),
        })
    return runs


def kind_of(name: str) -> str:
    return "start-up" if name.startswith("start-up") else "meshes" if name.startswith("meshes") else "images"


def steady_rate(name: str, count: int, results: dict) -> float | None:
    """Files per second of a pipeline variant once started: count / (its wall - the matching start-up run's)."""
    start = results.get(STARTUP_MP2 if "2 processes" in name else STARTUP_NO_SANDBOX if "timeout 0" in name else STARTUP)
    r = results[name]
    if "pipeline" not in name or kind_of(name) == "start-up" or not (start and start["ok"] and r["ok"]):
        return None
    return count / (r["wall"] - start["wall"]) if r["wall"] > start["wall"] else None


def loop_of(name: str) -> str:
    """The plain loop a variant is compared with."""
    if name.startswith("http"):
        return "http: urllib + Pillow loop"
    if name.startswith("images"):
        return "images: Pillow loop, resize 224" if "224" in name else "images: Pillow loop"
    return "meshes: trimesh load+sample loop"


def section(args, command: str, machine: str, counts: dict, results: dict, rates: dict) -> list[str]:
    cores = os.cpu_count() or 1
    lines = [f"## {report.now()} - media, {args.copies} copies", "", f"Command: `{command}`  ", f"Machine: {machine}  ",
             f"{counts['images']} images, {counts['meshes']} meshes (real files from ../shared/data, replicated); each "
             "variant in its own subprocess, wall time includes interpreter and Beam start-up; the HTTP variants fetch "
             "from a threaded http.server on 127.0.0.1 run by the benchmark (its CPU is on the same 2 cores).", "",
             "| variant | files | wall s | files/s | files/s after start-up | peak RSS MB | x its loop | x limit | load 1m |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    limits = {}
    for loop_name in ("images: Pillow loop", "http: urllib + Pillow loop"):
        r = results.get(loop_name)
        if r and r["ok"]:
            limits[loop_name] = cores * counts["images"] / r["wall"]
    for name, r in results.items():
        count = counts[kind_of(name)]
        base = results.get(loop_of(name)) if kind_of(name) != "start-up" else None
        vs_loop = f"{base['wall'] / r['wall']:.2f}x" if r["ok"] and base and base["ok"] else "-"
        limit = limits.get("http: urllib + Pillow loop" if name.startswith("http") else "images: Pillow loop")
        vs_limit = f"{count / r['wall'] / limit:.2f}x" if r["ok"] and limit and kind_of(name) == "images" else "-"
        wall = f"{r['wall']:.2f}" if r["ok"] else f"FAILED (rc={r.get('rc')})"
        rate = f"{count / r['wall']:.0f}" if r["ok"] and kind_of(name) != "start-up" else "-"
        steady = steady_rate(name, count, results)
        lines.append(f"| {name} | {count} | {wall} | {rate} | {f'{steady:.0f}' if steady else '-'} "
                     f"| {r['peak'] / 2**20:,.0f} | {vs_loop} | {vs_limit} | {r['load']:.1f} |")
    lines.append("")
    for loop_name, limit in limits.items():
        lines.append(f"Limit for {loop_name.split(':')[0]} (cores x the single-thread {loop_name.split(': ')[1]} rate): "
                     f"{cores} x {limit / cores:.0f} = {limit:.0f} images/s.  ")
    if rates:
        lines += ["", "| sampling step alone (meshes loaded once) | points | seconds | points/s |", "|---|---:|---:|---:|"]
        lines += [f"| {name.split(': ')[1]} | {n:,} | {s:.3f} | {n / s:,.0f} |" for name, (n, s) in rates.items()]
    for name, r in results.items():
        if not r["ok"]:
            lines += ["", f"{name} failed; stderr tail:", "", "```", *r["tail"].splitlines()[-8:], "```"]
    return lines


def charts(args, counts: dict, results: dict, rates: dict) -> list[str]:
    paths = []
    cores = os.cpu_count() or 1
    for kind, title in (("images", "images/s"), ("meshes", "meshes/s")):
        ok = {n: r for n, r in results.items() if r["ok"] and kind_of(n) == kind}
        if not ok:
            continue
        loop_r = results.get("images: Pillow loop")
        limit = (f"limit: {cores} x Pillow loop", cores * counts["images"] / loop_r["wall"]) \
            if kind == "images" and loop_r and loop_r["ok"] else None
        path = os.path.join(args.charts, f"media-{kind}.png")
        paths.append(report.bar_chart(path, f"{kind}: {counts[kind]} real files, {args.copies} copies (higher is better)",
                                      list(ok), [counts[kind] / r["wall"] for r in ok.values()], title, limit))
    if rates:
        path = os.path.join(args.charts, "media-sampling.png")
        paths.append(report.bar_chart(path, f"mesh sampling alone, {POINTS} points per mesh (higher is better)",
                                      [n.split(": ")[1] for n in rates], [n / s for n, s in rates.values()], "points/s"))
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups: {', '.join(GROUPS)}")
    parser.add_argument("--quick", action="store_true", help="only the first pipeline variant and the loops (smoke tests)")
    parser.add_argument("--workdir", default="/tmp/bench-media")
    parser.add_argument("--data", default=DATA, help="folder with images/ and meshes/ (default: the shared data set)")
    parser.add_argument("--results", default=report.RESULTS, help="markdown file the results are appended to")
    parser.add_argument("--charts", default=report.CHARTS, help="folder for the PNG charts")
    args = parser.parse_args(argv)
    groups = {g.strip() for g in args.only.split(",") if g.strip()}
    if not groups <= set(GROUPS):
        parser.error(f"--only {args.only!r}: give groups among {', '.join(GROUPS)}")
    if not os.path.isdir(args.data):
        sys.exit(f"{args.data} is not present: the media benchmark needs real images and meshes (--data)")
    command = shlex.join(["python", "-m", "bench.media_bench", *(sys.argv[1:] if argv is None else argv)])
    os.makedirs(args.workdir, exist_ok=True)
    image_paths = replicate(args.data, "images", BAD_IMAGES, args.copies, args.workdir)
    mesh_paths = replicate(args.data, "meshes", BAD_MESHES, args.copies, args.workdir)
    counts = {"images": len(image_paths), "meshes": len(mesh_paths), "start-up": 1}
    images = write_list(image_paths, os.path.join(args.workdir, "images.csv"))
    one_image = write_list(image_paths[:1], os.path.join(args.workdir, "one-image.csv"))
    meshes = write_list(mesh_paths, os.path.join(args.workdir, "meshes.csv"))
    out = lambda name: os.path.join(args.workdir, "out", name)  # noqa: E731
    machine = report.machine()
    results = {}
    with serve(args.workdir) as base_url:
        http_images = write_list([f"{base_url}/images/{os.path.basename(p)}" for p in image_paths],
                                 os.path.join(args.workdir, "http-images.csv"))
        runs = plan(groups, images, http_images, meshes, one_image, out)
        if args.quick:
            firsts = {next(n for n in runs if n.startswith(g)) for g in groups if any(n.startswith(g) for n in runs)}
            runs = {n: run for n, run in runs.items() if n in firsts or "loop" in n}
        for name, (kind, cmd) in runs.items():
            log = os.path.join(args.workdir, "logs", name.replace(" ", "_").replace(":", "").replace(",", ""))
            os.makedirs(os.path.dirname(log), exist_ok=True)
            results[name] = measure(cmd, log, 3600)
            print(f"  {name}: {'ok' if results[name]['ok'] else 'FAILED'} {results[name]['wall']:.2f} s", flush=True)
    rates = sampling_rates(mesh_paths) if "sampling" in groups else {}
    lines = section(args, command, machine, counts, results, rates)
    lines += [""] + [report.chart_link(args.results, p) for p in charts(args, counts, results, rates)]
    report.append(args.results, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
