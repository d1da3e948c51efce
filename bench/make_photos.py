"""Labeled photos for media benchmarks: a few hundred distinct 640x480 JPEGs (noise over gradients,
quality 85, ~55 KB each) and a `path,label` CSV naming `--photos` of them, each under its own path.

    python -m bench.make_photos --photos 40000 --workdir /tmp/photos [--distinct 300]

The distinct images are written once (`distinct/`); every row of the CSV is a symlink to one of them
(`links/NNNNNN.jpg`), so the pipeline sees as many files as rows. Existing files are reused.
"""
import argparse
import os

import numpy as np
from PIL import Image

WIDTH, HEIGHT, QUALITY = 640, 480, 85
LABELS = ("cat", "dog", "bird", "fish", "horse", "ship", "plane", "truck")


def distinct_photo(index: int) -> Image.Image:
    """A reproducible 640x480 RGB image: a colour gradient with noise on it (compresses like a photo)."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    colour = rng.uniform(0, 255, (3, 3))
    base = np.stack([c[0] + (c[1] - c[0]) * x / WIDTH + (c[2] - c[0]) * y / HEIGHT for c in colour], axis=-1)
    noise = rng.normal(0, 12, (HEIGHT, WIDTH, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def make_photos(photos: int, workdir: str, distinct: int = 300) -> str:
    """Write (or reuse) the photos and their CSV; returns the CSV's path."""
    originals = os.path.join(workdir, "distinct")
    links = os.path.join(workdir, "links")
    os.makedirs(originals, exist_ok=True)
    os.makedirs(links, exist_ok=True)
    for i in range(distinct):
        path = os.path.join(originals, f"{i:04d}.jpg")
        if not os.path.exists(path):
            distinct_photo(i).save(path, quality=QUALITY)
    csv_path = os.path.join(workdir, f"photos-{photos}.csv")
    with open(csv_path, "w") as csv:
        csv.write("path,label\n")
        for row in range(photos):
            link = os.path.join(links, f"{row:07d}.jpg")
            if not os.path.lexists(link):
                os.symlink(os.path.join(originals, f"{row % distinct:04d}.jpg"), link)
            csv.write(f"{link},{LABELS[row % len(LABELS)]}\n")
    return csv_path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, required=True)
    parser.add_argument("--workdir", default="/tmp/photos")
    parser.add_argument("--distinct", type=int, default=300)
    args = parser.parse_args(argv)
    print(make_photos(args.photos, args.workdir, args.distinct))


if __name__ == "__main__":
    main()
