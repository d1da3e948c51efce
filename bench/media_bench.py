"""Media benchmark: our pipeline on real images and meshes against plain single-process loops.

    python -m bench.media_bench [--copies 20] [--workdir /tmp/finetune-etl-media-bench]

Replicates the loadable images and meshes of ../shared/data (SOURCES.md lists which load) `--copies`
times into the workdir, writes labeled CSVs, and measures in one run, each in its own subprocess:
images: the pipeline (convert_to_blob), the pipeline resizing to 224, a Pillow loop (open + load) and the
limit (cores x the loop's rate); meshes: the pipeline (2048-point clouds) and docarray's former way,
`trimesh.load(path, force='mesh').sample(2048)` in a loop. Appends a table to bench/RESULTS.md.
"""
import argparse
import datetime
import os
import shutil
import sys

from bench.text_bench import measure

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "..", "shared", "data")
BAD_IMAGES = {"broken.png", "truncated_jpeg.jpg", "truncated_image.png", "truncated_end_chunk.png",
              "decompression_bomb.gif", "seek_too_large.tif", "hopper_unknown_pixel_mode.tif"}
BAD_MESHES = {"empty.stl", "empty.obj", "empty.ply", "TestScene.gltf"}


def replicate(kind: str, bad: set, copies: int, workdir: str) -> list[str]:
    """Copies of every loadable file of shared/data/<kind> -> their paths."""
    source = os.path.join(DATA, kind)
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


def write_list(paths: list[str], path: str) -> str:
    with open(path, "w") as handle:
        handle.writelines(f"{p},{os.path.basename(p).split('-', 1)[1]}\n" for p in paths)
    return path


def loop_images(list_path: str) -> None:
    from PIL import Image
    for line in open(list_path):
        with Image.open(line.split(",")[0]) as image:
            image.load()


def loop_meshes(list_path: str) -> None:
    """docarray's former way; it raises on point-only files (no faces), which are skipped here."""
    import trimesh
    for line in open(list_path):
        try:
            trimesh.load(line.split(",")[0], force="mesh").sample(2048)
        except (IndexError, ValueError):
            pass


def pipeline(csv_path: str, out: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.prepare", "--input", csv_path, "--output", out, "--overwrite",
            "--is-labeled", "--format", "parquet", *extra]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--workdir", default="/tmp/finetune-etl-media-bench")
    args = parser.parse_args(argv)
    if not os.path.isdir(DATA):
        sys.exit(f"{DATA} is not present: the media benchmark needs the shared real images and meshes")
    os.makedirs(args.workdir, exist_ok=True)
    images = write_list(replicate("images", BAD_IMAGES, args.copies, args.workdir), os.path.join(args.workdir, "images.csv"))
    meshes = write_list(replicate("meshes", BAD_MESHES, args.copies, args.workdir), os.path.join(args.workdir, "meshes.csv"))
    n_images, n_meshes = sum(1 for _ in open(images)), sum(1 for _ in open(meshes))
    out = lambda name: os.path.join(args.workdir, "out", name)  # noqa: E731
    runs = {
        "images: pipeline": (n_images, pipeline(images, out("images"))),
        "images: pipeline, --image-size 224": (n_images, pipeline(images, out("images224"), "--image-size", "224")),
        "images: pipeline, 2 processes": (n_images, pipeline(images, out("images-mp"), "--direct_running_mode=multi_processing", "--direct_num_workers=2")),
        "images: Pillow loop": (n_images, [sys.executable, "-m", "bench.media_bench", "--loop-images", images]),
        "meshes: pipeline": (n_meshes, pipeline(meshes, out("meshes"))),
        "meshes: pipeline, 2 processes": (n_meshes, pipeline(meshes, out("meshes-mp"), "--direct_running_mode=multi_processing", "--direct_num_workers=2")),
        "meshes: trimesh load+sample loop": (n_meshes, [sys.executable, "-m", "bench.media_bench", "--loop-meshes", meshes]),
    }
    results = {}
    for name, (count, cmd) in runs.items():
        result = measure(cmd, os.path.join(args.workdir, name.replace(" ", "_").replace(":", "").replace(",", "")), 3600)
        results[name] = (count, result)
        print(f"  {name}: {'ok' if result['ok'] else 'FAILED'} {result['wall']:.2f} s", flush=True)
    loop_rate = n_images / results["images: Pillow loop"][1]["wall"]
    lines = [f"## {datetime.datetime.now():%Y-%m-%d %H:%M} - media, {args.copies} copies", "",
             f"Command: `python -m bench.media_bench --copies {args.copies}`  ",
             f"Machine: nproc={os.cpu_count()}; {n_images} images, {n_meshes} meshes (real files from ../shared/data, "
             "replicated); each variant in its own subprocess, wall time includes interpreter and Beam start-up.", "",
             "| variant | files | wall s | files/s | peak RSS MB | vs loop |", "|---|---:|---:|---:|---:|---:|"]
    for name, (count, r) in results.items():
        loop = results["images: Pillow loop" if name.startswith("images") else "meshes: trimesh load+sample loop"][1]
        lines.append(f"| {name} | {count} | {r['wall']:.2f} | {count / r['wall']:.0f} | {r['peak'] / 2**20:,.0f} | "
                     f"{loop['wall'] / r['wall']:.2f}x |")
    lines += ["", f"Image limit (cores x single-thread Pillow decode rate): {os.cpu_count() * loop_rate:.0f} images/s.", ""]
    with open(os.path.join(REPO, "bench", "RESULTS.md"), "a") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("--loop-images", "--loop-meshes"):
        (loop_images if sys.argv[1] == "--loop-images" else loop_meshes)(sys.argv[2])
    else:
        main()
