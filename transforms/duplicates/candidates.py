"""The verified similar pairs among rows that share a band key (plain numpy, no Beam).

In: rows (key uint64, node uint64, signature), e.g. all the rows of a set of band keys gathered on one
worker, or keys with the index of their piece (node, signature), which then holds its signature once for
all its keys; and a vectorized similarity of two stacks of signatures with its threshold. Out: each
unordered pair of nodes that shares a key and passes the threshold, once, as (a, b, similarity) with a < b.

Rows with equal keys are the candidates: a run of L rows gives its L * (L - 1) / 2 pairs, generated for
all runs of one length at once (np.triu_indices per distinct length) and verified PAIR_CHUNK pairs at a
time. A run longer than `max_run` does not go quadratic: its rows are sorted by signature and each is
compared with the `window` rows after it only, so it costs `window` comparisons per row. Rows of one
signature are paired with the first of them (the smallest node) only, and only that one takes part in the
windows: a star, which is enough for connected components (and the cheapest graph for them) and gives
each its closest match, an equal one; a pair that several runs give (the bands of equal MinHash
signatures) is verified once. So 10^6 texts that all normalise to one form give 10^6 pairs to verify,
not `window` per text and band. That misses the pairs more than `window` rows apart in signature
order: near-duplicates whose signatures differ early (in the first MinHash entries, in the high bits of an
image hash) and have other rows sorted between them.

Every band key carries its band (or block, or quantisation) in its top byte (`tagged_keys`), so keys of
different bands of one kind never collide, whatever their hashes. A pair is reported once per call: a
pair whose keys went to different workers comes out of each of them.
"""
from typing import Callable, NamedTuple, Optional

import numpy as np

MAX_RUN = 200
WINDOW = 8
PAIR_CHUNK = 1 << 16  # candidate pairs verified at once: bounds the gathered signatures' memory
TAG_SHIFT = np.uint64(56)
_LOW = np.uint64((1 << 56) - 1)


class Pairs(NamedTuple):
    """Verified pairs: a (k,) uint64 < b (k,) uint64, and their similarity (k,) float64, sorted by (a, b)."""

    a: np.ndarray
    b: np.ndarray
    similarity: np.ndarray


def tagged_keys(hashes: np.ndarray, tag: int) -> np.ndarray:
    """(n,) uint64 hashes and a tag 0..255 -> (n,) uint64 keys: the tag in the top byte, 56 hash bits below."""
    if not 0 <= tag < 256:
        raise ValueError(f"a key's tag is one byte (0..255), not {tag}")
    return (np.uint64(tag) << TAG_SHIFT) | (hashes & _LOW)


def shared_keys(keys: np.ndarray) -> np.ndarray:
    """(m,) uint64 keys -> indices of the keys that another row shares, ascending: the only rows that can
    give a pair, so that the pieces of all other rows need no signature."""
    if keys.size < 2:
        return np.zeros(0, dtype=np.intp)
    order = np.argsort(keys)  # not stable: only which rows are shared matters
    ordered = keys[order]
    equal = ordered[1:] == ordered[:-1]
    return np.sort(order[np.r_[equal, False] | np.r_[False, equal]])


def similar_pairs(keys: np.ndarray, nodes: np.ndarray, signatures: np.ndarray,
                  similarity: Callable[[np.ndarray, np.ndarray], np.ndarray], threshold: float,
                  larger_is_closer: bool = True, max_run: int = MAX_RUN, window: int = WINDOW,
                  owners: Optional[np.ndarray] = None) -> Pairs:
    """Rows keys (m,) uint64 of pieces with nodes (k,) uint64 and signatures (k, ...) -> the Pairs of distinct
    nodes that share a key and whose similarity(signatures_i (p, ...), signatures_j (p, ...)) -> (p,) is >=
    threshold (<= threshold when not larger_is_closer, for distances); a pair found through several keys
    once. Key r is of piece owners[r] ((m,) indices into nodes and signatures, so a piece's signature is
    held once for all its keys); without owners, of piece r (m = k)."""
    if owners is None:
        if not len(keys) == len(nodes) == len(signatures):
            raise ValueError(f"keys, nodes and signatures need one row each: {len(keys)}, {len(nodes)}, "
                             f"{len(signatures)}")
        owners = np.arange(len(keys))
    elif not (len(keys) == len(owners) and len(nodes) == len(signatures)):
        raise ValueError(f"keys need an owner each and pieces a node and a signature each: {len(keys)} keys, "
                         f"{len(owners)} owners, {len(nodes)} nodes, {len(signatures)} signatures")
    order = np.argsort(keys)  # not stable (4x faster): which rows of a run pair up never depends on their order
    keys, owners = keys[order], np.asarray(owners)[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if keys.size else np.zeros(0, np.intp)
    lengths = np.diff(np.r_[starts, keys.size])
    found = [_verified(owners[i], owners[j], nodes, signatures, similarity, threshold, larger_is_closer)
             for i, j in _run_pairs(starts, lengths, max_run)]
    long = lengths > max_run
    if long.any():
        found += [_verified(i, j, nodes, signatures, similarity, threshold, larger_is_closer)
                  for i, j in _window_pairs(starts[long], lengths[long], owners, nodes, signatures, window)]
    return _distinct(found)


def _run_pairs(starts: np.ndarray, lengths: np.ndarray, max_run: int):
    """Runs (starts, lengths) -> chunks (i, j) of row indices of every pair inside each run of 2..max_run
    rows, about PAIR_CHUNK pairs at a time."""
    for length in np.unique(lengths[(lengths >= 2) & (lengths <= max_run)]):
        first, second = np.triu_indices(int(length), 1)
        runs = starts[lengths == length]
        per_chunk = max(1, PAIR_CHUNK // first.size)
        for at in range(0, runs.size, per_chunk):
            chunk = runs[at:at + per_chunk, None]
            yield (chunk + first).ravel(), (chunk + second).ravel()


def _window_pairs(starts: np.ndarray, lengths: np.ndarray, owners: np.ndarray, nodes: np.ndarray,
                  signatures: np.ndarray, window: int):
    """Long runs (starts, lengths) of rows owned by pieces `owners` -> chunks (i, j) of piece indices, in
    each run's order by signature, then node (so the order of the rows given does not matter): the rows of
    one signature paired with the first of them (each such pair once, however many runs give it); then,
    with only that first one left of them, each row and each of the `window` rows after it."""
    rows = np.repeat(starts, lengths) + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    run = np.repeat(np.arange(starts.size), lengths)
    owned = owners[rows]
    held = np.zeros(len(signatures), dtype=bool)
    held[owned] = True
    rank, same = _signature_order(np.flatnonzero(held), nodes, signatures)
    order = np.lexsort((rank[owned], run))
    pieces, run = owned[order], run[order]
    tied = np.r_[False, (run[1:] == run[:-1]) & (same[pieces[1:]] == same[pieces[:-1]])]
    firsts = np.flatnonzero(~tied)
    members = np.flatnonzero(tied)
    heads = firsts[np.cumsum(~tied)[members] - 1]
    star = np.sort(pieces[heads].astype(np.int64) * len(signatures) + pieces[members])
    star = star[np.r_[True, star[1:] != star[:-1]]] if star.size else star
    for at in range(0, star.size, PAIR_CHUNK):
        yield star[at:at + PAIR_CHUNK] // len(signatures), star[at:at + PAIR_CHUNK] % len(signatures)
    pieces, run = pieces[firsts], run[firsts]
    for step in range(1, window + 1):
        same_run = run[step:] == run[:-step]
        i, j = pieces[:-step][same_run], pieces[step:][same_run]
        for at in range(0, i.size, PAIR_CHUNK):
            yield i[at:at + PAIR_CHUNK], j[at:at + PAIR_CHUNK]


def _signature_order(pieces: np.ndarray, nodes: np.ndarray, signatures: np.ndarray) -> tuple:
    """Piece indices -> (rank, same), each (len(signatures),) int64 and set at those pieces only: a piece's
    place in their order by signature, then node, and the number of its signature in that order (equal
    for equal signatures). Each piece is sorted once, however many runs hold it; signatures of bytes are
    compared 8 bytes at a time as big-endian words, which orders them as byte by byte does."""
    columns = signatures[pieces].reshape(pieces.size, -1)
    if columns.dtype == np.uint8 and columns.shape[1] % 8 == 0:
        columns = np.ascontiguousarray(columns).view(">u8").astype(np.uint64)
    order = np.lexsort((nodes[pieces], *columns.T[::-1]))
    ranked = columns[order]
    rank, same = np.full(len(signatures), -1, np.int64), np.full(len(signatures), -1, np.int64)
    rank[pieces[order]] = np.arange(pieces.size)
    same[pieces[order]] = np.cumsum(np.r_[True, (ranked[1:] != ranked[:-1]).any(axis=1)])
    return rank, same


def _verified(i: np.ndarray, j: np.ndarray, nodes: np.ndarray, signatures: np.ndarray, similarity, threshold: float,
              larger_is_closer: bool) -> tuple:
    """Candidate piece pairs (i, j) -> (a, b, similarity) of those of distinct nodes that pass, a < b."""
    keep = nodes[i] != nodes[j]
    i, j = i[keep], j[keep]
    values = np.asarray(similarity(signatures[i], signatures[j]), dtype=np.float64)
    keep = values >= threshold if larger_is_closer else values <= threshold
    a, b = nodes[i[keep]], nodes[j[keep]]
    return np.minimum(a, b), np.maximum(a, b), values[keep]


def _distinct(found: list) -> Pairs:
    """Chunks of (a, b, similarity) -> Pairs, each (a, b) once, sorted."""
    a = np.concatenate([np.zeros(0, np.uint64), *(f[0] for f in found)])
    b = np.concatenate([np.zeros(0, np.uint64), *(f[1] for f in found)])
    values = np.concatenate([np.zeros(0, np.float64), *(f[2] for f in found)])
    order = np.lexsort((b, a))
    a, b, values = a[order], b[order], values[order]
    fresh = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])] if a.size else np.zeros(0, bool)
    return Pairs(a[fresh], b[fresh], values[fresh])
