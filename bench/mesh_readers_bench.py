"""Mesh loading alone, in this process: meshes.point_cloud (fast readers) against the trimesh path and trimesh's loop.

    python -m bench.mesh_readers_bench [--rounds 3] [--out /tmp/results/mesh_readers.md]

On the loadable meshes of ../shared/data/meshes (the files bench.media_bench replicates), each variant reads
every file from disk and makes a 2048-point cloud, one file after another:
  point_cloud             transforms.media.meshes.point_cloud (mesh_readers for plain OFF/OBJ/PLY/STL)
  point_cloud, trimesh    the same with load_geometry(fast=False): what point_cloud did before mesh_readers
  trimesh loop            trimesh.load(path, force='mesh').sample(2048), bench.media_loops' loop
Variants alternate round by round (the machine is shared); the best round of each is reported, in meshes/s,
overall and per format, with how many files of each format the fast readers accept.
"""
import argparse
import logging
import os
import time

import trimesh

from bench.media_bench import BAD_MESHES, DATA
from bench.media_loops import POINTS
from schemas.modalities import uri_extension
from transforms.media.errors import MediaError
from transforms.media.mesh_readers import read_mesh
from transforms.media.meshes import load_geometry, mesh_seed, point_cloud, sample_point_cloud


def _ours(path: str) -> None:
    with open(path, "rb") as handle:
        point_cloud(handle.read(), uri_extension(path), POINTS)


def _ours_trimesh(path: str) -> None:
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        sample_point_cloud(load_geometry(data, uri_extension(path), fast=False), mesh_seed(data), POINTS)
    except MediaError:  # as point_cloud returns it
        pass


def _trimesh_loop(path: str) -> None:
    try:
        trimesh.load(path, force="mesh").sample(POINTS)
    except (IndexError, ValueError):
        pass


VARIANTS = {"point_cloud (fast readers)": _ours, "point_cloud, trimesh path (before)": _ours_trimesh,
            "trimesh.load(force='mesh').sample(2048) loop": _trimesh_loop}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="/tmp/results/mesh_readers.md")
    args = parser.parse_args(argv)
    logging.getLogger("trimesh").setLevel(logging.CRITICAL)
    folder = os.path.join(DATA, "meshes")
    names = sorted(n for n in os.listdir(folder) if n not in BAD_MESHES and not n.endswith(".md"))
    paths = [os.path.join(folder, n) for n in names]
    formats = sorted({uri_extension(p) for p in paths})
    best = {}  # (variant, path) -> the file's best time over the rounds
    for _ in range(args.rounds):
        for name, run in VARIANTS.items():
            for path in paths:
                start = time.perf_counter()
                run(path)
                seconds = time.perf_counter() - start
                best[(name, path)] = min(seconds, best.get((name, path), seconds))
    spent = {(name, f): sum(s for (n, p), s in best.items() if n == name and uri_extension(p) == f)
             for name in VARIANTS for f in formats}
    accepted = {f: sum(read_mesh(open(p, "rb").read(), f) is not None for p in paths if uri_extension(p) == f)
                for f in formats}
    count = {f: sum(uri_extension(p) == f for p in paths) for f in formats}
    lines = [f"{len(paths)} meshes, best of {args.rounds} rounds, meshes/s (per file: read from disk + 2048-point "
             "cloud), load average at the end " + " ".join(f"{x:.1f}" for x in os.getloadavg()), "",
             "| variant | all | " + " | ".join(f"{f} ({accepted[f]}/{count[f]} fast)" for f in formats) + " |",
             "|---|---:|" + "---:|" * len(formats)]
    for name in VARIANTS:
        total = sum(spent[(name, f)] for f in formats)
        cells = [f"{count[f] / spent[(name, f)]:.0f}" for f in formats]
        lines.append(f"| {name} | {len(paths) / total:.0f} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "a") as handle:
        handle.write(text + "\n\n")


if __name__ == "__main__":
    main()
