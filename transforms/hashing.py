"""Stable 64-bit content hashes of Arrow columns, vectorized with numpy.

The same values give the same hash on every run, machine and runner (no Python `hash`, no process seed).
Strings are hashed 8 bytes at a time across the whole column at once (a multiply-xorshift mix per word,
then a final avalanche with the length); strings longer than LONG_STRING bytes go through blake2b one by
one. The hashes decide buckets, ids and sampling; duplicates are still confirmed by comparing content.

A row hash folds its columns' hashes in one at a time, and each fold step is a bijection of uint64 (an odd
multiplier, xor-shifts, splitmix64's finalizer), so `unfolded_hashes` takes the last columns back out: with
a row hash and the hashes of its last columns, the hash of the columns before them, without their values.
"""
import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LONG_STRING = 1024
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
NULL_HASH = np.uint64(0x6A09E667F3BCC909)  # what every null hashes to
_S29, _S31, _S32 = np.uint64(29), np.uint64(31), np.uint64(32)
_M1_INVERSE, _M2_INVERSE, _M3_INVERSE = (np.uint64(pow(int(m), -1, 1 << 64)) for m in (_M1, _M2, _M3))


def _avalanche(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, elementwise on uint64."""
    h = (h ^ (h >> _S31)) * _M2
    h = (h ^ (h >> _S29)) * _M3
    return h ^ (h >> _S32)


def _avalanche_inverse(h: np.ndarray) -> np.ndarray:
    """The inverse of _avalanche, elementwise: _avalanche(_avalanche_inverse(h)) == h."""
    h = h ^ (h >> _S32)
    h = _xorshift_inverse(h * _M3_INVERSE, 29)
    return _xorshift_inverse(h * _M2_INVERSE, 31)


def _xorshift_inverse(h: np.ndarray, shift: int) -> np.ndarray:
    """x from h = x ^ (x >> shift): each pass recovers `shift` more of x's high bits."""
    x = h
    for _ in range(1, -(-64 // shift)):
        x = h ^ (x >> np.uint64(shift))
    return x


def string_hashes(values: pa.Array) -> np.ndarray:
    """String or binary array (n,) -> (n,) uint64 hash of each value's UTF-8 bytes; nulls share one hash."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_large_string(values.type) and not pa.types.is_large_binary(values.type):
        values = values.cast(pa.large_binary() if pa.types.is_binary(values.type) else pa.large_string())
    n = len(values)
    _, offsets_buffer, data_buffer = values.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=n + 1, offset=values.offset * 8)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    data = data[offsets[0]:offsets[-1]]  # a slice of a batch shares its parent's whole buffer: copy only ours
    padded = np.concatenate([data, np.zeros(8, dtype=np.uint8)])
    words = np.ndarray(shape=(padded.size - 7,), dtype="<u8", buffer=padded, strides=(1,))
    starts, lengths = offsets[:-1] - offsets[0], np.diff(offsets)
    h = _avalanche(lengths.astype(np.uint64) ^ _M1)
    short = np.flatnonzero(lengths <= LONG_STRING)
    w = 0
    while short.size:
        rest = lengths[short] - 8 * w
        word = words[starts[short] + 8 * w]
        partial = rest < 8
        bits = (rest[partial] * 8).astype(np.uint64)
        word[partial] &= (np.uint64(1) << bits) - np.uint64(1)
        mixed = (h[short] ^ word) * _M1
        h[short] = mixed ^ (mixed >> _S29)
        short = short[rest > 8]
        w += 1
    h = _avalanche(h)
    for i in np.flatnonzero(lengths > LONG_STRING):
        piece = data[starts[i]:starts[i] + lengths[i]].tobytes()
        h[i] = np.frombuffer(hashlib.blake2b(piece, digest_size=8).digest(), dtype="<u8")[0]
    if values.null_count:
        h[np.asarray(values.is_null())] = NULL_HASH
    return h


def column_hashes(values: pa.Array) -> np.ndarray:
    """Any string, binary or numeric column (n,) -> (n,) uint64 hash."""
    if values.null_count == len(values):
        return np.full(len(values), NULL_HASH, dtype=np.uint64)
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        bits = np.asarray(pc.fill_null(values.cast(pa.float64()), 0.0)).view(np.uint64).copy()
        h = _avalanche(bits ^ _M2)
        if values.null_count:
            h[np.asarray(values.is_null())] = NULL_HASH
        return h
    return string_hashes(values)


def category_hashes(values: pa.Array) -> np.ndarray:
    """A column of few distinct values (n,) -> the same (n,) uint64 as column_hashes, each distinct value hashed once."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    if not len(encoded.dictionary):  # nothing but nulls
        return np.full(len(values), NULL_HASH, dtype=np.uint64)
    h = column_hashes(encoded.dictionary)[np.asarray(encoded.indices.fill_null(0))]
    if values.null_count:
        h[np.asarray(values.is_null())] = NULL_HASH
    return h


def content_hashes(*columns: pa.Array) -> np.ndarray:
    """Equal-length columns -> (n,) uint64 hash of each row's values taken together, in column order."""
    return combined_hashes([column_hashes(column) for column in columns])


def combined_hashes(hashes: list[np.ndarray]) -> np.ndarray:
    """column_hashes of equal-length columns, in column order -> (n,) uint64 hash of each row (= content_hashes)."""
    return folded_hashes(np.full(len(hashes[0]), _M3, dtype=np.uint64), hashes)


def folded_hashes(h: np.ndarray, hashes: list[np.ndarray]) -> np.ndarray:
    """(n,) row hashes with more columns' column_hashes folded in, in order: combined_hashes(a + b) equals
    folded_hashes(combined_hashes(a), b)."""
    for column in hashes:
        h = _avalanche((h * _M1) ^ column)
    return h


def unfolded_hashes(h: np.ndarray, hashes: list[np.ndarray]) -> np.ndarray:
    """(n,) row hashes that had `hashes` (column_hashes of equal-length columns) folded in last, in order ->
    the row hashes before them: folded_hashes(unfolded_hashes(h, hashes), hashes) == h. So
    unfolded_hashes(combined_hashes(a + b), b) == combined_hashes(a)."""
    for column in reversed(hashes):
        h = (_avalanche_inverse(h) ^ column) * _M1_INVERSE
    return h


def unit_interval(hashes: np.ndarray) -> np.ndarray:
    """(n,) uint64 hashes -> (n,) float64 in [0, 1), for deterministic sampling."""
    return (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)
