"""Point clouds -> shape descriptors that ignore position, size, rotation and sampling; their band keys; their
similarity.

In: n point clouds, each (N_i, 3) float (N_i >= 1; the pipeline samples 2048 points per mesh). Out:
(n, D) float32 descriptors, D = RADIAL_LEVELS + PAIR_LEVELS + 3 = 51; (n, KEYS) uint64 band keys; (m,)
similarities in (0, 1]. All clouds of a batch are processed together in numpy (one concatenated array).

A cloud is centred on its centroid and scaled by its RMS radius (so translation and uniform scale drop
out); the descriptor then holds only rotation-invariant distributions (Osada et al., "Shape
distributions", 2002), independent of the points' order:

- RADIAL_LEVELS quantiles of the points' distances from the centroid;
- PAIR_LEVELS quantiles of the D2 shape distribution: distances between point pairs, each point paired
  with the points PAIR_SHIFTS fixed fractions of the cloud further in its order (deterministic; sampled
  points come in random order, so these are random pairs);
- the 3 principal extents, square roots of the covariance's eigenvalues, largest first.

Each part is divided by its sampling noise at 2048 points (the standard deviation of its entries between
two samplings of one mesh, measured on tests/data/meshes: RADIAL_NOISE, PAIR_NOISE, EXTENT_NOISE), so a
descriptor's entries are in noise units and their RMS difference between two samplings of one mesh is
about 1.5. cloud_similarity is 1 / (1 + d / MATCH_DISTANCE) for that RMS difference d: CLOUD_MATCH = 0.5
at d = MATCH_DISTANCE = 4. Measured on every mesh of tests/data/meshes with faces: re-sampled with 4 other
seeds and randomly rotated, scaled and moved, each stays within d = 3.7 of itself (median 1.55); the
closest different shapes are d = 4.2 apart (busted.STL and cube.off, a 2 x 2 x 1 box), then 5.2 (Duck.glb
and angle_block.STL); the cubes of different files are one shape (d < 2). Mirror images match (distances
cannot tell them apart), and so do shapes with the same distance distributions, which is rare.

Band keys: 9 coarse features, the means of the thirds of each quantile part and the 3 extents, make 3
bands of 3 (inner radial, inner D2, largest extent; middle, middle, middle; outer, outer, smallest); each
band is quantised in cells of CELL noise units at OFFSETS shifts of the grid, one key per (band, shift).
"""
import numpy as np

from transforms.duplicates.candidates import tagged_keys
from transforms.hashing import folded_hashes

RADIAL_LEVELS = 24
PAIR_LEVELS = 24
PAIR_SHIFTS = 8
RADIAL_NOISE, PAIR_NOISE, EXTENT_NOISE = 0.007, 0.005, 0.0045
DIMENSIONS = RADIAL_LEVELS + PAIR_LEVELS + 3
MATCH_DISTANCE = 4.0
CLOUD_MATCH = 0.5  # cloud_similarity at MATCH_DISTANCE: the threshold for a near-duplicate cloud
CELL = 8.0
OFFSETS = (0.0, 0.25, 0.5, 0.75)
_BANDS = ((0, 3, 6), (1, 4, 7), (2, 5, 8))  # indices into the 9 coarse features
KEYS = len(_BANDS) * len(OFFSETS)
CHUNK_POINTS = 1 << 18  # points described at once: about 100 MB of temporaries
_CELL_SALT = np.uint64(0xC10D_5EED_CE11_0001)


def _segment_quantiles(values: np.ndarray, sizes: np.ndarray, levels: int) -> np.ndarray:
    """Non-negative values (v,) in consecutive segments of `sizes` (n,) -> (n, levels) quantiles of each
    segment at (i + 0.5) / levels, interpolated linearly like np.quantile."""
    starts = np.cumsum(sizes) - sizes
    owner = np.repeat(np.arange(sizes.size), sizes)
    spread = 2 * float(values.max(initial=0)) + 1  # sorting owner * spread + value sorts within segments
    ordered = values[np.argsort(owner * spread + values, kind="stable")]
    position = ((np.arange(levels) + 0.5) / levels) * (sizes[:, None] - 1)  # (n, levels)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, sizes[:, None] - 1)
    fraction = position - low
    return ordered[starts[:, None] + low] * (1 - fraction) + ordered[starts[:, None] + high] * fraction


def cloud_signatures(clouds: list) -> np.ndarray:
    """n clouds, each (N_i, 3) with N_i >= 1 -> (n, DIMENSIONS) float32 descriptors in noise units, computed
    CHUNK_POINTS points at a time (whole clouds)."""
    sizes = np.array([len(cloud) for cloud in clouds], dtype=np.int64)
    if not sizes.size:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    if sizes.min() < 1:
        raise ValueError("every cloud needs at least one point")
    chunk = np.cumsum(sizes) // CHUNK_POINTS
    cuts = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1], True])
    parts = [_signatures(clouds[start:end], sizes[start:end]) for start, end in zip(cuts[:-1], cuts[1:])]
    return np.concatenate(parts)


def _signatures(clouds: list, sizes: np.ndarray) -> np.ndarray:
    """cloud_signatures of clouds of (n,) sizes, all at once."""
    points = np.concatenate([np.asarray(cloud, dtype=np.float64).reshape(-1, 3) for cloud in clouds])  # (P, 3)
    starts = np.cumsum(sizes) - sizes
    owner = np.repeat(np.arange(sizes.size), sizes)
    centred = points - (np.add.reduceat(points, starts) / sizes[:, None])[owner]
    squared = (centred ** 2).sum(axis=1)
    rms = np.sqrt(np.add.reduceat(squared, starts) / sizes)
    rms[rms == 0] = 1.0  # a cloud of one repeated point: every distance is 0
    unit = centred / rms[owner, None]
    radial = _segment_quantiles(np.sqrt(squared) / rms[owner], sizes, RADIAL_LEVELS)
    shifts = (sizes[:, None] * np.arange(1, PAIR_SHIFTS + 1)) // (PAIR_SHIFTS + 1)  # (n, PAIR_SHIFTS)
    local = np.arange(points.shape[0]) - starts[owner]
    partners = starts[owner, None] + (local[:, None] + shifts[owner]) % sizes[owner, None]  # (P, PAIR_SHIFTS)
    pair_distances = np.sqrt(((unit[:, None, :] - unit[partners]) ** 2).sum(axis=2))  # (P, PAIR_SHIFTS)
    pairs = _segment_quantiles(pair_distances.ravel(), sizes * PAIR_SHIFTS, PAIR_LEVELS)
    covariance = np.add.reduceat(unit[:, :, None] * unit[:, None, :], starts) / sizes[:, None, None]
    extents = np.sqrt(np.maximum(np.linalg.eigvalsh(covariance)[:, ::-1], 0))  # (n, 3), largest first
    return np.hstack([radial / RADIAL_NOISE, pairs / PAIR_NOISE, extents / EXTENT_NOISE]).astype(np.float32)


def coarse_features(signatures: np.ndarray) -> np.ndarray:
    """(n, DIMENSIONS) descriptors -> (n, 9): means of the thirds of the radial and of the D2 quantiles,
    then the 3 extents."""
    signatures = np.asarray(signatures, dtype=np.float64)
    thirds = [signatures[:, start:start + levels].reshape(len(signatures), 3, -1).mean(axis=2)
              for start, levels in ((0, RADIAL_LEVELS), (RADIAL_LEVELS, PAIR_LEVELS))]
    return np.hstack([*thirds, signatures[:, RADIAL_LEVELS + PAIR_LEVELS:]])


def cloud_band_keys(signatures: np.ndarray) -> np.ndarray:
    """(n, DIMENSIONS) descriptors -> (n, KEYS) uint64: for each band and grid shift, the hash of the band's
    cells, tagged with the (band, shift) index."""
    features = coarse_features(signatures)
    keys = np.empty((len(features), KEYS), dtype=np.uint64)
    for index, (band, offset) in enumerate((b, o) for b in _BANDS for o in OFFSETS):
        cells = np.floor(features[:, band] / CELL + offset).astype(np.int64).view(np.uint64)  # (n, 3)
        salt = np.full(len(features), _CELL_SALT ^ np.uint64(index), dtype=np.uint64)
        keys[:, index] = tagged_keys(folded_hashes(salt, list(cells.T)), index)
    return keys


def cloud_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m, DIMENSIONS) and (m, DIMENSIONS) descriptors -> (m,) float64 RMS difference, in noise units."""
    difference = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.sqrt((difference ** 2).mean(axis=1))


def cloud_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m, DIMENSIONS) and (m, DIMENSIONS) descriptors -> (m,) float64 in (0, 1]: 1 / (1 + distance /
    MATCH_DISTANCE); near duplicates have at least CLOUD_MATCH."""
    return 1.0 / (1.0 + cloud_distance(a, b) / MATCH_DISTANCE)
