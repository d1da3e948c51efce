"""What decoding in the sandbox costs: the loadable real images and meshes of ../shared/data decoded in
the worker (--decode-timeout 0) and in the sandbox, interleaved `--rounds` times; prints the best time of
each and the overhead per file. `python -m bench.sandbox_cost [--rounds 5]`
"""
import argparse
import time
from pathlib import Path

from bench.media_bench import BAD_IMAGES, BAD_MESHES, DATA
from schemas.options import MediaOptions
from transforms.media import decode_sandbox


def files(kind: str, bad: set) -> list[Path]:
    return sorted(p for p in (Path(DATA) / kind).iterdir() if p.name not in bad and p.suffix != ".md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=None)
    args = parser.parse_args()
    images = [p.read_bytes() for p in files("images", BAD_IMAGES)]
    meshes = [(p.read_bytes(), p.suffix[1:]) for p in files("meshes", BAD_MESHES)]
    variants = {"worker": MediaOptions(decode_timeout=0, image_size=args.image_size),
                "sandbox": MediaOptions(decode_timeout=60, image_size=args.image_size)}
    decode_sandbox.point_cloud(*meshes[0], variants["sandbox"])  # start the child outside the timings
    best = {(kind, name): float("inf") for kind in ("images", "meshes") for name in variants}
    for _ in range(args.rounds):
        for name, options in variants.items():
            started = time.perf_counter()
            for data in images:
                decode_sandbox.decode_image(data, options)
            best["images", name] = min(best["images", name], time.perf_counter() - started)
            started = time.perf_counter()
            [decode_sandbox.point_cloud(*mesh, options) for mesh in meshes]
            best["meshes", name] = min(best["meshes", name], time.perf_counter() - started)
    for kind, count in (("images", len(images)), ("meshes", len(meshes))):
        worker, sandbox = best[kind, "worker"], best[kind, "sandbox"]
        print(f"{kind}: {count} files, best of {args.rounds}: worker {worker * 1000:.0f} ms, sandbox "
              f"{sandbox * 1000:.0f} ms, +{(sandbox - worker) / count * 1000:.2f} ms per file "
              f"({(sandbox / worker - 1) * 100:+.0f}%)")


if __name__ == "__main__":
    main()
