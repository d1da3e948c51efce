"""Encoded images -> 64-bit perceptual hashes, their pigeonhole band keys, and Hamming distances.

In: n image files' bytes (JPEG, PNG, WEBP, GIF, BMP, TIFF: whatever Pillow reads). Out: (n,) uint64
hashes with an (n,) bool saying which decoded; (n, keys) uint64 band keys; (m,) distances.

The hash is a windowed DCT hash. Each image is decoded once by Pillow (a JPEG at the smallest 1/2^k
scale still DRAFT pixels wide and high), turned upright by its EXIF orientation, made grayscale and
resized to SIDE x SIDE (Lanczos); then, for the whole batch at once in numpy: the window-weighted mean is
subtracted, the pixels are multiplied by a Hann window, and of the 2-D DCT-II the 64 lowest frequencies
after DC (by u^2 + v^2) give one bit each, set when the coefficient is above FLAT. An image with no
structure at 32 x 32 (one flat colour, or only stripes finer than that) hashes to 0 or close to it.

Chosen over dHash (signs of 9x8 horizontal gradients) and pHash (32x32 DCT, top-left 8x8 without DC,
median threshold) by measuring: `python -m bench.near_duplicates_quality` on the 30 distinct pictures of
tests/data/images, the largest copy-to-original distance and the copies within 4 bits:

    transformation            dHash        pHash        windowed DCT hash (this)
    resize 50%, to 224 px     3, 30/30     2, 30/30     2, 30/30
    JPEG q50, PNG             4, 30/30     2, 30/30     1, 30/30
    WEBP                      3, 30/30    31, 29/30     1, 30/30   (pHash: a flat image's noise)
    crop 3% per side         12, 16/30    16, 12/30     8, 25/30
    crop 4% per side         14, 10/30    18,  7/30    10, 18/30
    crop 5% per side         17,  6/30    24,  5/30    11, 13/30
    rotate 3 degrees         17,  7/30    18,  7/30    11, 21/30
    closest distinct pair    12 bits      16 bits      14 bits   (1st percentile 18, 22, 19)

A crop moves every edge of the frame and the content towards it, and pHash's median threshold flips the
bits of all the coefficients near the median when it moves. The window keeps the frame's edges out, and
with a fixed threshold a bit flips only when its own coefficient crosses it. Still, no 64-bit global hash measured here keeps 5 % crops within 4
bits (they need 11); distance 8 would take every 3 % crop, with distinct pictures 14 bits apart or more.

Hashes depend on Pillow's decoders and resampling: equal on every run of the same Pillow build.
"""
import io
from itertools import combinations
from math import comb

import numpy as np
from PIL import Image, ImageOps
from scipy.fft import dct

from transforms.duplicates.candidates import tagged_keys
from transforms.hashing import folded_hashes

SIDE = 32
DRAFT = 128
REDUCING_GAP = 3.0  # a large image is first shrunk by an integer factor (box): 2400 x 2000 in 2 ms, not 28
BITS = 64
FLAT = 1.0  # a coefficient sets its bit above this (gray levels, orthonormal DCT): no structure, no bit
_JPEG_FORMATS = ("JPEG", "MPO")
_BLOCK_SALT = np.uint64(0x1A6E_B10C_5A17_0001)


def _lowest_frequencies(count: int) -> tuple:
    """-> (u, v) index arrays of the `count` lowest 2-D DCT frequencies after DC, by u^2 + v^2 then u."""
    u, v = np.divmod(np.arange(SIDE * SIDE), SIDE)
    order = np.lexsort((u, u * u + v * v))[1:count + 1]
    return u[order], v[order]


_U, _V = _lowest_frequencies(BITS)
_K = int(max(_U.max(), _V.max())) + 1
_WINDOW = np.cos(np.pi * ((np.arange(SIDE) + 0.5) / SIDE - 0.5)) ** 2  # Hann, (SIDE,)
_WEIGHTS = np.outer(_WINDOW, _WINDOW)  # (SIDE, SIDE)
_DCT = dct(np.eye(SIDE), type=2, norm="ortho", axis=0)[:_K]  # (K, SIDE): rows are the K lowest frequencies
_BIT_VALUES = np.uint64(1) << np.arange(BITS, dtype=np.uint64)


def grayscale(blob: bytes) -> np.ndarray | None:
    """An image file's bytes -> (SIDE, SIDE) float64 upright grayscale, or None when Pillow cannot read it."""
    try:
        with Image.open(io.BytesIO(blob)) as img:
            if img.format in _JPEG_FORMATS:
                img.draft("L", (DRAFT, DRAFT))
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            small = img.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
            return np.asarray(small, dtype=np.float64)
    except Exception:  # Pillow raises many types on bad bytes; the image just gets no hash
        return None


def pixel_hashes(pixels: np.ndarray) -> np.ndarray:
    """(n, SIDE, SIDE) grayscale -> (n,) uint64 windowed DCT hashes (bit i: the i-th lowest frequency > FLAT)."""
    weighted_mean = np.einsum("nij,ij->n", pixels, _WEIGHTS) / _WEIGHTS.sum()
    windowed = (pixels - weighted_mean[:, None, None]) * _WEIGHTS
    coefficients = _DCT @ windowed @ _DCT.T  # (n, K, K)
    bits = coefficients[:, _U, _V] > FLAT  # (n, BITS)
    return (bits * _BIT_VALUES).sum(axis=1, dtype=np.uint64)


def image_hashes(blobs: list) -> tuple:
    """n image files' bytes (None for none) -> (hashes (n,) uint64, ok (n,) bool); an image Pillow cannot
    decode has ok False and hash 0."""
    pixels = [grayscale(blob) if blob else None for blob in blobs]
    ok = np.array([p is not None for p in pixels], dtype=bool)
    hashes = np.zeros(len(blobs), dtype=np.uint64)
    if ok.any():
        hashes[ok] = pixel_hashes(np.stack([p for p in pixels if p is not None]))
    return hashes, ok


def block_masks(distance: int, blocks: int | None = None) -> np.ndarray:
    """-> (keys,) uint64 masks: the 64 bits cut into `blocks` (default distance + 1) near-equal runs, and
    each union of blocks - distance of them; keys = comb(blocks, blocks - distance)."""
    blocks = distance + 1 if blocks is None else blocks
    if not 0 <= distance < blocks <= BITS:
        raise ValueError(f"need 0 <= distance < blocks <= {BITS}, not distance {distance} and {blocks} blocks")
    if comb(blocks, blocks - distance) > 256:
        raise ValueError(f"{blocks} blocks at distance {distance} make {comb(blocks, blocks - distance)} keys; "
                         "at most 256 fit the key's tag byte")
    edges = np.linspace(0, BITS, blocks + 1).round().astype(int)
    singles = [int(sum(1 << bit for bit in range(lo, hi))) for lo, hi in zip(edges[:-1], edges[1:])]
    return np.array([sum(singles[i] for i in chosen) for chosen in combinations(range(blocks), blocks - distance)],
                    dtype=np.uint64)


def image_band_keys(hashes: np.ndarray, distance: int = 4, blocks: int | None = None) -> np.ndarray:
    """(n,) uint64 hashes -> (n, comb(blocks, blocks - distance)) uint64 keys, (n, distance + 1) by default.

    Pigeonhole: two hashes within `distance` bits differ in at most `distance` of the blocks, so they agree
    exactly on at least blocks - distance of them, hence share the key of that union of blocks. Each key
    is tagged with its union's index. By default the unions are single blocks of 64 / (distance + 1) bits
    (13 at distance 4): at 10^6 well-spread hashes a bucket holds about 10^6 / 2^13 = 120 images, so about
    5 x 10^6 x 120 / 2 = 3 x 10^8 comparisons in all, not 5 x 10^11 for all pairs; but buckets beyond
    similar_pairs' max_run (200) get compared by window only. More blocks make wider keys at the price of
    more of them: blocks = distance + 2 gives comb(6, 2) = 15 keys of about 21 bits (buckets of about 0.5
    at 10^6), distance + 3 gives 35 keys of about 27 bits (for 10^7 and more). Perceptual hashes are not
    uniform (images of one kind share low frequencies), so real buckets are larger than these averages."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    masks = block_masks(distance, blocks)
    keys = np.empty((hashes.size, masks.size), dtype=np.uint64)
    for index, mask in enumerate(masks):
        salt = np.full(hashes.size, _BLOCK_SALT ^ mask, dtype=np.uint64)
        keys[:, index] = tagged_keys(folded_hashes(salt, [hashes & mask]), index)
    return keys


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m,) uint64 and (m,) uint64 hashes -> (m,) int64 number of differing bits."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))).astype(np.int64)
