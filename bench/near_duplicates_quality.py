"""How well the near-duplicate signatures find transformed copies of real texts, images and meshes.

    python -m bench.near_duplicates_quality [--images DIR] [--texts CSV] [--meshes DIR]

In: a folder of images, a `question,label` CSV and a folder of meshes (defaults: ../shared/data/images,
../shared/data/csv/text-text_example.csv and ../shared/data/meshes when present, else tests/data/images,
examples/quora-labeled.csv and tests/data/meshes). Each original gets transformed copies; originals and
copies together go through the search the pipeline runs (signatures, band keys, similar_pairs) at the
default thresholds (text MinHash >= 0.9 or equal normalised text, image hashes within 4 bits, clouds at
CLOUD_MATCH). Out, printed as markdown: per transformation, recall (copies found paired with their
original) and precision (found pairs with a copy that join copies of one original, or originals found
near-duplicate of each other, which are listed); the image hash against dHash and pHash on the same
copies; the time per 10^4 texts, 10^3 images and 10^3 clouds of 2048 points of computing signatures.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import os
import re
import time
import warnings
from itertools import combinations

import numpy as np
import pyarrow as pa
from PIL import Image, ImageEnhance, ImageOps
from scipy.fft import dctn
from scipy.sparse.csgraph import connected_components
from scipy.spatial.transform import Rotation

from bench import report
from transforms.duplicates.candidates import similar_pairs
from transforms.duplicates.cloud_signatures import CLOUD_MATCH, cloud_band_keys, cloud_signatures, cloud_similarity
from transforms.duplicates.image_signatures import hamming, image_band_keys, image_hashes
from transforms.duplicates.text_signatures import (minhash_signatures, normalized_text_keys, text_band_keys,
                                                   text_similarity)
from transforms.media.meshes import load_geometry, sample_point_cloud

SHARED = os.path.join(os.path.dirname(report.REPO), "shared", "data")
TEXT_THRESHOLD, IMAGE_DISTANCE, POINTS = 0.9, 4, 2048
FULLWIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}  # ASCII -> fullwidth forms, equal under NFKC


def _default(shared: str, local: str) -> str:
    shared = os.path.join(SHARED, shared)
    return shared if os.path.exists(shared) else os.path.join(report.REPO, local)


# --- the transformations ---------------------------------------------------------------------------------


def _typo(text: str, rng) -> str | None:
    words = text.split()
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return None
    i = candidates[rng.integers(len(candidates))]
    w, at = words[i], 1 + rng.integers(len(words[i]) - 2)
    words[i] = w[:at - 1] + w[at] + w[at - 1] + w[at + 1:]  # two neighbouring letters swapped
    return " ".join(words)


def _word_replaced(text: str, rng, vocabulary: list) -> str | None:
    words = text.split()
    if len(words) < 12:
        return None
    words[rng.integers(len(words))] = vocabulary[rng.integers(len(vocabulary))]
    return " ".join(words)


TEXT_COPIES = {
    "upper case": lambda t, rng, v: t.upper(),
    "punctuation": lambda t, rng, v: re.sub(r"(\w+) ", r"\1, ", re.sub(r"[^\w\s]", "", t), count=1) + "?!",
    "whitespace": lambda t, rng, v: "  " + "   ".join(t.split()) + " \t\n",
    "fullwidth (NFKC)": lambda t, rng, v: t.translate(FULLWIDTH),
    "word appended (>= 12 words)": lambda t, rng, v: f"{t} {v[rng.integers(len(v))]}" if len(t.split()) >= 12 else None,
    "word replaced (>= 12 words)": _word_replaced,
    "typo (letters swapped)": lambda t, rng, v: _typo(t, rng),
}


def _encoded(img: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": 90} if fmt == "JPEG" and not options else options))
    return out.getvalue()


def _cropped(img: Image.Image, share: float) -> Image.Image:
    w, h = img.size
    return img.crop((round(w * share), round(h * share), w - round(w * share), h - round(h * share)))


def _to_side(img: Image.Image, side: int) -> Image.Image:
    scale = side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)


IMAGE_COPIES = {
    "resize 50%": lambda im: _encoded(_to_side(im, max(im.size) // 2)),
    "resize to 224": lambda im: _encoded(_to_side(im, 224)),
    "JPEG q50": lambda im: _encoded(im, "JPEG", quality=50),
    "PNG": lambda im: _encoded(im, "PNG"),
    "WEBP": lambda im: _encoded(im, "WEBP"),
    "crop 3% per side": lambda im: _encoded(_cropped(im, 0.03)),
    "crop 4% per side": lambda im: _encoded(_cropped(im, 0.04)),
    "crop 5% per side": lambda im: _encoded(_cropped(im, 0.05)),
    "crop 10% per side (hard)": lambda im: _encoded(_cropped(im, 0.10)),
    "rotate 3 degrees (hard)": lambda im: _encoded(im.rotate(3, resample=Image.Resampling.BILINEAR)),
    "brightness +20% (hard)": lambda im: _encoded(ImageEnhance.Brightness(im).enhance(1.2)),
}


def _moved(cloud: np.ndarray, rng) -> np.ndarray:
    """The cloud rotated, scaled and translated at random."""
    rotation = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    return ((cloud @ rotation.T) * rng.uniform(0.1, 10) + rng.normal(0, 5, 3)).astype(np.float32)


def _jittered(cloud: np.ndarray, rng) -> np.ndarray:
    """Every point moved by noise of 1% of the cloud's RMS radius."""
    return cloud + rng.normal(0, 0.01 * np.sqrt(cloud.var(axis=0).sum()), cloud.shape)


CLOUD_COPIES = {  # (geometry, its cloud, rng) -> a moved copy
    "re-sampled (other seed), rotated, scaled, moved": lambda g, c, rng: _moved(sample_point_cloud(g, 7, POINTS), rng),
    "same points jittered 1%, moved": lambda g, c, rng: _moved(_jittered(c, rng), rng),
    "re-sampled with 1024 points, moved": lambda g, c, rng: _moved(sample_point_cloud(g, 8, POINTS // 2), rng),
}


# --- search and scoring --------------------------------------------------------------------------------


def search(keys: np.ndarray, signatures: np.ndarray, similarity, threshold: float, larger_is_closer: bool = True):
    """(n, k) band keys and (n, ...) signatures of nodes 0..n-1 -> the similar_pairs the stage would find."""
    n, k = keys.shape
    nodes = np.repeat(np.arange(n, dtype=np.uint64), k)
    return similar_pairs(keys.reshape(-1), nodes, np.repeat(signatures, k, axis=0), similarity, threshold,
                         larger_is_closer)


def score(pairs, originals: int, copies: list) -> tuple[list, list, list]:
    """Pairs among nodes (originals first, then copies as (source, transformation)) -> (table rows,
    pairs among originals, the originals of false pairs). A pair with a copy is true when both ends come
    from one original, or from two originals found near-duplicate of each other."""
    source = np.r_[np.arange(originals), [s for s, _ in copies]].astype(np.int64)
    kind = [None] * originals + [t for _, t in copies]
    a, b = pairs.a.astype(np.int64), pairs.b.astype(np.int64)
    among = {(int(x), int(y)) for x, y in zip(a, b) if y < originals}
    found = {(int(x), int(y)) for x, y in zip(a, b)}
    true = [(source[x] == source[y]) or (min(source[x], source[y]), max(source[x], source[y])) in among
            for x, y in zip(a, b)]
    rows = []
    for name in [*dict.fromkeys(t for _, t in copies), None]:
        mine = [originals + i for i, (_, t) in enumerate(copies) if name is None or t == name]
        hits = sum((int(source[c]), c) in found for c in mine)
        involved = [ok for (x, y), ok in zip(zip(a, b), true) if y >= originals and
                    (name is None or kind[y] == name or (x >= originals and kind[x] == name))]
        rows.append((name or "**all**", len(mine), hits, len(involved), sum(involved)))
    false = sorted({(int(source[x]), int(source[y])) for (x, y), ok in zip(zip(a, b), true) if not ok})
    return rows, sorted(among), false


def print_false(false: list, names: list) -> None:
    """Print the originals whose copies were paired wrongly (up to 5)."""
    if false:
        print(f"\nFalse pairs join copies of {len(false)} pairs of originals: "
              + "; ".join(f"{names[x]!r} / {names[y]!r}" for x, y in false[:5]))


def print_table(title: str, rows: list) -> None:
    print(f"\n### {title}\n\n| transformation | copies | found | recall | found pairs with a copy | true | precision |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, copies, hits, pairs, true in rows:
        recall = f"{hits / copies:.3f}" if copies else "-"
        precision = f"{true / pairs:.3f}" if pairs else "-"
        print(f"| {name} | {copies} | {hits} | {recall} | {pairs} | {true} | {precision} |")


# --- the three modalities --------------------------------------------------------------------------------


def texts_quality(path: str) -> None:
    with open(path, newline="", encoding="utf-8") as handle:
        originals = list(dict.fromkeys(row[0].strip() for row in csv.reader(handle) if row and row[0].strip()))
    vocabulary = sorted({w for t in originals for w in t.split() if w.isalpha() and len(w) > 3})
    rng = np.random.default_rng(0)
    copies, texts = [], list(originals)
    for name, make in TEXT_COPIES.items():
        for i, text in enumerate(originals):
            copy = make(text, rng, vocabulary)
            if copy is not None and copy != text:
                copies.append((i, name))
                texts.append(copy)
    column = pa.array(texts)
    signatures = minhash_signatures(column)
    keys = np.hstack([text_band_keys(signatures), normalized_text_keys(column)[:, None]])
    rows, among, false = score(search(keys, signatures, text_similarity, TEXT_THRESHOLD), len(originals), copies)
    print_table(f"Texts: {len(originals)} questions of {os.path.relpath(path, report.REPO)}, MinHash >= "
                f"{TEXT_THRESHOLD} or equal normalised text", rows)
    print(f"\nPairs among the originals themselves: {len(among)}"
          + "".join(f"\n- {originals[x]!r} / {originals[y]!r}" for x, y in among[:5]))
    print_false(false, originals)
    timed = pa.array((originals * (10_000 // len(originals) + 1))[:10_000])
    started = time.perf_counter()
    text_band_keys(minhash_signatures(timed))
    normalized_text_keys(timed)
    print(f"\nTime per 10^4 texts (signatures, band keys, normalised keys): {time.perf_counter() - started:.3f} s")


def _photos(folder: str) -> tuple[list, list]:
    """The folder's images that decode and are at least 32 px each way -> (names, upright RGB images)."""
    names, images = [], []
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        try:
            with Image.open(path) as img:
                img.load()
                upright = ImageOps.exif_transpose(img).convert("RGB")
        except Exception:
            continue
        if min(upright.size) >= 32:
            names.append(os.path.basename(path))
            images.append((open(path, "rb").read(), upright))
    return names, images


def _dhash(pixels: np.ndarray) -> np.ndarray:
    return (pixels[:, 1:] > pixels[:, :-1]).ravel()


def _phash(pixels: np.ndarray) -> np.ndarray:
    coefficients = dctn(pixels, type=2, norm="ortho")[:8, :8].ravel()[1:]
    return np.r_[coefficients > np.median(coefficients), False]


def _bits_of(blob: bytes, kind: str) -> np.ndarray:
    """The dHash (9x8) or pHash (32x32 DCT, 8x8 without DC, median) bits of an image file, for comparison."""
    with Image.open(io.BytesIO(blob)) as img:
        if img.format == "JPEG":
            img.draft("L", (128, 128))
        img = ImageOps.exif_transpose(img).convert("L")
        size = (9, 8) if kind == "dHash" else (32, 32)
        pixels = np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)
    return _dhash(pixels) if kind == "dHash" else _phash(pixels)


def distinct_pictures(names: list, originals: list) -> tuple[list, list, list]:
    """Originals -> (names, originals, dropped): one file per picture, files whose hashes are within
    2 * IMAGE_DISTANCE bits of another's (joined transitively) taken as one picture, the first kept."""
    hashes, _ = image_hashes([blob for blob, _ in originals])
    close = np.bitwise_count(hashes[:, None] ^ hashes[None, :]) <= 2 * IMAGE_DISTANCE
    _, picture = connected_components(close, directed=False)
    first = {p: i for i, p in reversed(list(enumerate(picture)))}
    keep = sorted(first.values())
    dropped = [f"{names[i]} (as {names[first[picture[i]]]})" for i in range(len(names)) if i not in keep]
    return [names[i] for i in keep], [originals[i] for i in keep], dropped


def images_quality(folder: str) -> None:
    names, originals, dropped = distinct_pictures(*_photos(folder))
    copies, blobs = [], [blob for blob, _ in originals]
    for name, make in IMAGE_COPIES.items():
        for i, (_, upright) in enumerate(originals):
            copies.append((i, name))
            blobs.append(make(upright))
    hashes, ok = image_hashes(blobs)
    assert ok.all(), "every original and copy decodes"
    pairs = search(image_band_keys(hashes, IMAGE_DISTANCE), hashes, hamming, IMAGE_DISTANCE, larger_is_closer=False)
    rows, among, false = score(pairs, len(originals), copies)
    print_table(f"Images: {len(originals)} distinct pictures among the files of "
                f"{os.path.relpath(folder, report.REPO)}, hashes within {IMAGE_DISTANCE} bits", rows)
    print(f"\nFiles left out as the same picture as another (within {2 * IMAGE_DISTANCE} bits): {len(dropped)}: "
          + ", ".join(dropped))
    print(f"\nPairs among the kept originals: {len(among)}"
          + "".join(f"; {names[x]} / {names[y]} ({hamming(hashes[[x]], hashes[[y]])[0]})" for x, y in among))
    print_false(false, names)
    compare_hashes(names, blobs, hashes, copies)
    timed = (blobs[:len(originals)] * (1000 // len(originals) + 1))[:1000]
    started = time.perf_counter()
    image_hashes(timed)
    print(f"\nTime per 10^3 images (image_hashes of the originals, repeated): {time.perf_counter() - started:.3f} s")


def compare_hashes(names: list, blobs: list, hashes: np.ndarray, copies: list) -> None:
    """Print, per transformation and hash, the largest copy-to-original distance and the copies within
    IMAGE_DISTANCE; and the smallest distance between the (distinct) originals."""
    n = len(names)
    ours = np.unpackbits(hashes.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little").astype(bool)
    bits = {"dHash": np.array([_bits_of(b, "dHash") for b in blobs]),
            "pHash": np.array([_bits_of(b, "pHash") for b in blobs]), "windowed DCT (ours)": ours}
    print("\n### Image hashes compared: max distance of a copy to its original, copies within "
          f"{IMAGE_DISTANCE} bits\n\n| transformation | " + " | ".join(bits) + " |\n|---|" + "---|" * len(bits))
    for name in dict.fromkeys(t for _, t in copies):
        cells = []
        for b in bits.values():
            d = [int((b[n + i] != b[s]).sum()) for i, (s, t) in enumerate(copies) if t == name]
            cells.append(f"{max(d)}, {sum(x <= IMAGE_DISTANCE for x in d)}/{len(d)}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    cells = []
    for b in bits.values():
        d = sorted((int((b[x] != b[y]).sum()), names[x], names[y]) for x, y in combinations(range(n), 2))
        cells.append(f"{d[0][0]} ({d[0][1]} / {d[0][2]}), 1st percentile {np.percentile([x for x, _, _ in d], 1):.0f}")
    print(f"| distinct originals: smallest distance ({n * (n - 1) // 2} pairs) | " + " | ".join(cells) + " |")


def clouds_quality(folder: str) -> None:
    names, geometries = [], []
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        try:
            geometry = load_geometry(open(path, "rb").read(), path.rsplit(".", 1)[-1])
        except Exception:
            continue
        if geometry.faces is not None:
            names.append(os.path.basename(path))
            geometries.append(geometry)
    rng = np.random.default_rng(0)
    clouds = [sample_point_cloud(g, 1, POINTS) for g in geometries]
    copies, everything = [], list(clouds)
    for name, make in CLOUD_COPIES.items():
        for i, (geometry, cloud) in enumerate(zip(geometries, clouds)):
            copies.append((i, name))
            everything.append(make(geometry, cloud, rng))
    signatures = cloud_signatures(everything)
    rows, among, false = score(search(cloud_band_keys(signatures), signatures, cloud_similarity, CLOUD_MATCH),
                               len(names), copies)
    print_table(f"Point clouds: {len(names)} meshes of {os.path.relpath(folder, report.REPO)} with faces, "
                f"{POINTS} points, similarity >= {CLOUD_MATCH}", rows)
    print(f"\nPairs among the originals themselves (the same shape in several files): {len(among)}: "
          + ", ".join(f"{names[x]} / {names[y]}" for x, y in among))
    print_false(false, names)
    timed = (clouds * (1000 // len(clouds) + 1))[:1000]
    started = time.perf_counter()
    cloud_signatures(timed)
    print(f"\nTime per 10^3 clouds of {POINTS} points (cloud_signatures): {time.perf_counter() - started:.3f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=_default("images", "tests/data/images"))
    parser.add_argument("--texts", default=_default("csv/text-text_example.csv", "examples/quora-labeled.csv"))
    parser.add_argument("--meshes", default=_default("meshes", "tests/data/meshes"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")  # Pillow's and trimesh's warnings on the odd test files
    print(f"Near-duplicate quality, {report.now()}; {report.machine()}")
    texts_quality(args.texts)
    images_quality(args.images)
    clouds_quality(args.meshes)


if __name__ == "__main__":
    main()
