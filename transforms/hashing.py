"""Stable 64-bit content hashes of Arrow columns: the same values give the same hash on every run,
machine and runner (no Python `hash`, no process seed)."""
import hashlib

import numpy as np
import pyarrow as pa

_SEPARATOR = "\x1f"
_NULL = "\x00"


def content_hashes(*columns: pa.Array) -> np.ndarray:
    """Equal-length string-like columns -> (n,) uint64 hash of each row's values taken together."""
    lists = [c.to_pylist() for c in columns]
    digests = b"".join(
        hashlib.blake2b(
            _SEPARATOR.join(_NULL if v is None else str(v) for v in values).encode("utf-8", "surrogatepass"),
            digest_size=8,
        ).digest()
        for values in zip(*lists)
    )
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def unit_interval(hashes: np.ndarray) -> np.ndarray:
    """(n,) uint64 hashes -> (n,) float64 in [0, 1), for deterministic sampling."""
    return (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)
