"""transforms.split.assign: groups laid out along the requested fractions, seeded, stratified, order-free."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from transforms.split.assign import LARGE_GROUP, large_groups, plan_splits

FRACTIONS = (0.8, 0.1, 0.1)


def achieved(plan, splits: int = 3) -> np.ndarray:
    return np.bincount(plan.splits, weights=plan.sizes, minlength=splits) / plan.sizes.sum()


def random_groups(n: int, strata: int, seed: int = 1, largest: int = 20):
    rng = np.random.default_rng(seed)
    groups = np.unique(rng.integers(0, 2**64 - 1, n, dtype=np.uint64))
    return groups, rng.integers(1, largest, len(groups)), rng.integers(0, strata, len(groups)).astype(np.uint64)


@pytest.mark.parametrize("n, strata", [(10_000, 1), (50_000, 5_000), (200_000, 100_000)])
def test_fractions_are_met_within_two_points_when_no_group_is_large(n, strata):
    groups, sizes, stratum = random_groups(n, strata)
    assert sizes.max() / sizes.sum() < LARGE_GROUP
    plan = plan_splits(groups, sizes, stratum, FRACTIONS, seed=0)
    assert np.abs(achieved(plan) - FRACTIONS).max() < 0.02


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), strata=st.integers(1, 20), seed=st.integers(0, 2**32), cut=st.integers(1, 99))
def test_the_plan_depends_only_on_the_groups_and_the_seed(n, strata, seed, cut):
    groups, sizes, stratum = random_groups(n, strata, seed % 1000)
    fractions = (cut / 100, 1 - cut / 100)
    plan = plan_splits(groups, sizes, stratum, fractions, seed)
    shuffled = np.random.default_rng(seed).permutation(len(groups))
    again = plan_splits(groups[shuffled], sizes[shuffled], stratum[shuffled], fractions, seed)
    assert (again.groups == plan.groups).all() and (again.splits == plan.splits).all()
    assert (plan.split_of(groups[shuffled]) == again.split_of(groups[shuffled])).all()
    assert set(np.unique(plan.splits)) <= {0, 1}


def test_each_stratum_is_spread_over_the_splits():
    """Stratified: every label of 100 single-document groups gets 80/10/10 of its documents."""
    groups, _, _ = random_groups(5_000, 1)
    groups = groups[:5_000 - 5_000 % 100]
    stratum = np.repeat(np.arange(len(groups) // 100, dtype=np.uint64), 100)
    plan = plan_splits(groups, np.ones(len(groups), np.int64), stratum, FRACTIONS, seed=3)
    for label in np.unique(stratum):
        counts = np.bincount(plan.split_of(groups[stratum == label]), minlength=3)
        assert counts.tolist() == [80, 10, 10]


def test_another_seed_gives_another_split():
    groups, sizes, stratum = random_groups(2_000, 1)
    assert (plan_splits(groups, sizes, stratum, FRACTIONS, 0).splits
            != plan_splits(groups, sizes, stratum, FRACTIONS, 1).splits).any()


def test_large_groups_are_listed_with_their_share_and_split():
    groups = np.arange(1, 201, dtype=np.uint64)
    sizes = np.ones(200, np.int64)
    sizes[7] = 300  # 300 of 499 documents
    plan = plan_splits(groups, sizes, np.zeros(200, np.uint64), FRACTIONS, 0)
    listed = large_groups(plan, ("train", "validation", "test"), top=2)
    assert listed[0] == {"group": f"{8:016x}", "documents": 300, "share": 0.6012,
                         "split": ("train", "validation", "test")[int(plan.split_of(np.array([8], np.uint64))[0])]}
    assert len(listed) == 2 and listed[1]["documents"] == 1
