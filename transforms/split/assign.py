"""Which split each group goes to: a seeded order of the groups, then their documents laid out along the
requested fractions (plain numpy, no Beam).

Groups are ordered by a hash of (group, seed), within strata when the split is stratified (labeled rows
split by document: a stratum is a label). Walking that order, a group's position is the middle of its
documents in the running count, as a fraction of its stratum's documents, shifted by a seeded offset per
stratum (so that the first group of every small stratum does not always land in the first split); the
split is the fraction interval that position falls in. Each split then receives its fraction of every
stratum's documents, give or take one group at each boundary: within 2 percentage points of the request
whenever no group holds more than 1% of the documents. Nothing depends on the input order, the runner or
the number of workers: only on the groups, their sizes and the seed.
"""
import dataclasses

import numpy as np

from transforms.hashing import combined_hashes, unit_interval

LARGE_GROUP = 0.01  # a group holding more of the documents than this can push a split off its fraction
_ORDER_SALT = np.uint64(0x5DEECE66D)
_OFFSET_SALT = np.uint64(0x2545F4914F6CDD1D)


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """The split of every group: `groups` sorted (uint64), `splits` (int8 index into the split names) in the
    same order, and each group's document count."""

    groups: np.ndarray
    splits: np.ndarray
    sizes: np.ndarray

    def split_of(self, groups: np.ndarray) -> np.ndarray:
        """(n,) uint64 group ids (each one planned) -> (n,) int8 split index (searched in ascending order:
        several times faster than in any order)."""
        order = np.argsort(groups)
        at = np.empty(len(groups), dtype=np.intp)
        at[order] = np.searchsorted(self.groups, groups[order])
        return self.splits[at]


def _seeded(values: np.ndarray, seed: int, salt: np.uint64) -> np.ndarray:
    return combined_hashes([np.full(len(values), salt ^ np.uint64(seed), dtype=np.uint64), values])


def plan_splits(groups: np.ndarray, sizes: np.ndarray, strata: np.ndarray, fractions: tuple, seed: int) -> SplitPlan:
    """Distinct groups (n,) uint64 with their document counts (n,) and strata (n,) uint64 (all equal when
    not stratified), the split fractions (summing to 1) and the seed -> the SplitPlan."""
    groups, sizes, strata = np.asarray(groups, np.uint64), np.asarray(sizes, np.int64), np.asarray(strata, np.uint64)
    order = np.lexsort((_seeded(groups, seed, _ORDER_SALT), strata))
    ordered_strata, ordered_sizes = strata[order], sizes[order]
    starts = np.flatnonzero(np.r_[True, ordered_strata[1:] != ordered_strata[:-1]]) if len(order) else order
    running = np.cumsum(ordered_sizes) - ordered_sizes  # documents before each group, whole order
    stratum_index = np.cumsum(np.r_[False, ordered_strata[1:] != ordered_strata[:-1]]) if len(order) else order
    before = running - running[starts][stratum_index]
    totals = np.add.reduceat(ordered_sizes, starts)[stratum_index] if len(order) else ordered_sizes
    offsets = unit_interval(_seeded(ordered_strata, seed, _OFFSET_SALT))
    position = np.mod(offsets + (before + ordered_sizes / 2) / np.maximum(totals, 1), 1.0)
    bounds = np.cumsum(np.asarray(fractions, dtype=np.float64))[:-1]
    ordered_splits = np.searchsorted(bounds, position, side="right").astype(np.int8)
    by_group = np.argsort(groups, kind="stable")
    splits = np.empty(len(groups), dtype=np.int8)
    splits[order] = ordered_splits
    return SplitPlan(groups[by_group], splits[by_group], sizes[by_group])


def large_groups(plan: SplitPlan, names: tuple, top: int = 5) -> list[dict]:
    """The `top` largest groups (or every group over LARGE_GROUP of the documents, if more), largest first:
    [{group (16 hex digits), documents, share, split}]."""
    total = max(int(plan.sizes.sum()), 1)
    order = np.lexsort((plan.groups, -plan.sizes))
    count = max(top, int(np.count_nonzero(plan.sizes > LARGE_GROUP * total)))
    return [{"group": f"{int(plan.groups[i]):016x}", "documents": int(plan.sizes[i]),
             "share": round(float(plan.sizes[i]) / total, 4), "split": names[int(plan.splits[i])]}
            for i in order[:count]]
