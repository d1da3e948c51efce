"""similar_pairs: exact pairs on small hand-built rows, each pair once across keys, no pair of a node with
itself, distances, long runs compared by window only, agreement with a brute force on random rows, and
keys that name their piece (owners) agreeing with a row per key; shared_keys, the rows that can pair."""
import numpy as np
import pytest

from transforms.duplicates.candidates import MAX_RUN, PAIR_CHUNK, WINDOW, shared_keys, similar_pairs, tagged_keys


def rows(*triples):
    """(key, node, value) triples -> keys, nodes (uint64) and signatures (m, 1) float64."""
    keys, nodes, values = zip(*triples)
    return (np.array(keys, dtype=np.uint64), np.array(nodes, dtype=np.uint64),
            np.array(values, dtype=np.float64).reshape(-1, 1))


def closeness(a, b):
    """Signatures (m, 1) -> 1 - |a - b|."""
    return 1.0 - np.abs(a[:, 0] - b[:, 0])


def as_list(pairs) -> list:
    return [(int(a), int(b), round(float(s), 6)) for a, b, s in zip(*pairs)]


def test_pairs_within_a_key_that_pass_the_threshold():
    keys, nodes, signatures = rows((5, 30, 0.10), (5, 10, 0.15), (5, 20, 0.90), (7, 40, 0.50), (7, 50, 0.55),
                                   (9, 60, 0.10))
    found = similar_pairs(keys, nodes, signatures, closeness, 0.9)
    assert as_list(found) == [(10, 30, 0.95), (40, 50, 0.95)]  # a < b, sorted; 60 is alone under its key
    assert found.a.dtype == np.uint64 and found.similarity.dtype == np.float64


def test_rows_in_any_order_give_the_same_pairs():
    keys, nodes, signatures = rows((5, 30, 0.10), (7, 40, 0.50), (5, 10, 0.15), (7, 50, 0.55))
    order = np.array([3, 1, 0, 2])
    assert as_list(similar_pairs(keys[order], nodes[order], signatures[order], closeness, 0.9)) == \
        as_list(similar_pairs(keys, nodes, signatures, closeness, 0.9)) == [(10, 30, 0.95), (40, 50, 0.95)]


def test_a_pair_found_through_several_keys_is_reported_once():
    keys, nodes, signatures = rows((1, 2, 0.5), (1, 3, 0.5), (2, 3, 0.5), (2, 2, 0.5), (3, 2, 0.5), (3, 3, 0.5))
    assert as_list(similar_pairs(keys, nodes, signatures, closeness, 0.9)) == [(2, 3, 1.0)]


def test_a_node_is_never_paired_with_itself():
    keys, nodes, signatures = rows((1, 4, 0.5), (1, 4, 0.5), (1, 8, 0.5))
    assert as_list(similar_pairs(keys, nodes, signatures, closeness, 0.9)) == [(4, 8, 1.0)]


def test_distances_keep_pairs_at_most_the_threshold():
    keys = np.zeros(4, dtype=np.uint64)
    nodes = np.arange(4, dtype=np.uint64)
    hashes = np.array([0b0000, 0b0011, 0b1111, 0b0111], dtype=np.uint64)
    bits = lambda a, b: np.bitwise_count(a ^ b).astype(np.int64)
    found = similar_pairs(keys, nodes, hashes, bits, 2, larger_is_closer=False)
    assert as_list(found) == [(0, 1, 2), (1, 2, 2), (1, 3, 1), (2, 3, 1)]


def test_no_rows_and_no_shared_keys_give_no_pairs():
    empty = similar_pairs(np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros((0, 1)), closeness, 0.5)
    assert [len(x) for x in empty] == [0, 0, 0]
    keys, nodes, signatures = rows((1, 1, 0.5), (2, 2, 0.5), (3, 3, 0.5))
    assert as_list(similar_pairs(keys, nodes, signatures, closeness, 0.0)) == []


def test_mismatched_rows_are_refused():
    with pytest.raises(ValueError, match="one row each"):
        similar_pairs(np.zeros(2, np.uint64), np.zeros(3, np.uint64), np.zeros((2, 1)), closeness, 0.5)


def test_long_run_compares_each_row_with_its_window_in_signature_order():
    """A run of 1,000 rows (> MAX_RUN) costs WINDOW comparisons per row: with every pair passing, exactly
    the pairs at most WINDOW apart in signature order come out, not all 499,500."""
    length = 1000
    rng = np.random.default_rng(3)
    values = rng.permutation(length).astype(np.float64)  # signature order != row order
    keys = np.full(length, 42, dtype=np.uint64)
    nodes = np.arange(100, 100 + length, dtype=np.uint64)
    compared = []

    def everything(a, b):
        compared.append(len(a))
        return np.ones(len(a))

    found = similar_pairs(keys, nodes, values.reshape(-1, 1), everything, 0.5)
    assert sum(compared) == found.a.size == WINDOW * length - WINDOW * (WINDOW + 1) // 2
    rank = {int(n): v for n, v in zip(nodes, values)}
    gaps = np.array([abs(rank[int(a)] - rank[int(b)]) for a, b in zip(found.a, found.b)])
    assert gaps.min() == 1 and gaps.max() == WINDOW  # far pairs in signature order are what it misses


def test_a_long_run_gives_the_same_pairs_whatever_the_order_of_its_rows():
    """A run of 600 rows, a third of them sharing one signature (more than a window of ties): the pairs
    depend on the rows, not on the order they come in."""
    rng = np.random.default_rng(8)
    length = 600
    keys = np.full(length, 7, dtype=np.uint64)
    nodes = rng.permutation(length).astype(np.uint64)
    signatures = np.where(np.arange(length) % 3 == 0, 0, rng.integers(0, 50, length)).astype(np.uint32).reshape(-1, 1)
    same = lambda a, b: (a == b).mean(axis=1)  # noqa: E731
    found = as_list(similar_pairs(keys, nodes, signatures, same, 1.0))
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(length)
        assert as_list(similar_pairs(keys[order], nodes[order], signatures[order], same, 1.0)) == found


def test_a_long_run_pairs_equal_signatures_by_a_star_and_the_others_by_window():
    """A run of 300 rows, 100 of them of one signature: those are paired with the first of them (the
    smallest node) only, and in order by signature, then node, with the others left out, every row is paired
    with the WINDOW rows after it."""
    rng = np.random.default_rng(5)
    values = np.r_[np.full(100, 500.0), rng.choice(np.r_[0:500, 501:1000], 200, replace=False)].astype(np.float64)
    nodes = rng.permutation(300).astype(np.uint64)
    found = as_list(similar_pairs(np.full(300, 9, np.uint64), nodes, values.reshape(-1, 1),
                                  lambda a, b: np.ones(len(a)), 0.5))
    equal = {int(n) for n, v in zip(nodes, values) if v == 500.0}
    ranked = [int(n) for _, n in sorted(zip(values.tolist(), nodes.tolist())) if n not in equal or n == min(equal)]
    window = {(min(a, b), max(a, b)) for k, a in enumerate(ranked) for b in ranked[k + 1:k + 1 + WINDOW]}
    star = {(min(equal), other) for other in equal - {min(equal)}}
    assert [(a, b) for a, b, _ in found] == sorted(window | star)


def test_long_run_of_equal_signatures_is_joined_as_a_star():
    """500 copies of one signature: each is paired with the smallest node only, so all are connected by
    499 pairs in one step of connected components."""
    length = 500
    keys = np.full(length, 7, dtype=np.uint64)
    nodes = np.arange(length, dtype=np.uint64)[::-1].copy()
    found = similar_pairs(keys, nodes, np.zeros((length, 4), dtype=np.uint32), lambda a, b: (a == b).mean(axis=1), 1.0)
    assert found.a.tolist() == [0] * (length - 1) and found.b.tolist() == list(range(1, length))


@pytest.mark.parametrize("max_run", [MAX_RUN, 3])
def test_matches_a_brute_force_over_random_rows(max_run):
    """Runs up to max_run against every pair of rows sharing a key; with max_run 3 longer runs give a subset."""
    rng = np.random.default_rng(11)
    m = 3000
    keys = rng.integers(0, 60, m).astype(np.uint64)  # runs of about 50: many pairs, several chunks
    nodes = rng.integers(0, 2000, m).astype(np.uint64)
    signatures = rng.integers(0, 4, (m, 3)).astype(np.uint8)
    signatures[:, 0] = (nodes % 4).astype(np.uint8)  # a node has one signature
    signatures[:, 1] = (nodes % 3).astype(np.uint8)
    signatures[:, 2] = (nodes % 5).astype(np.uint8)
    similarity = lambda a, b: (a == b).mean(axis=1)
    found = set(as_list(similar_pairs(keys, nodes, signatures, similarity, 0.6, max_run=max_run)))
    expected = set()
    for key in np.unique(keys):
        members = np.flatnonzero(keys == key)
        for x in members:
            for y in members:
                if nodes[x] < nodes[y]:
                    s = float((signatures[x] == signatures[y]).mean())
                    if s >= 0.6:
                        expected.add((int(nodes[x]), int(nodes[y]), round(s, 6)))
    run_lengths = np.bincount(keys.astype(np.int64))
    assert (run_lengths * (run_lengths - 1) // 2).sum() > PAIR_CHUNK  # verified in several chunks
    if max_run == MAX_RUN:
        assert found == expected
    else:
        assert found and found < expected


@pytest.mark.parametrize("max_run", [MAX_RUN, 3])
def test_pieces_with_several_keys_give_the_pairs_of_a_row_per_key(max_run):
    """Keys that name their piece (owners) give what the same keys give with the piece's node and signature
    repeated on a row per key, long runs (compared by window) included."""
    rng = np.random.default_rng(5)
    pieces, per_piece = 800, 4
    nodes = rng.integers(0, 500, pieces).astype(np.uint64)  # some nodes have several pieces
    signatures = rng.integers(0, 3, (pieces, 3)).astype(np.uint8)
    owners = np.repeat(np.arange(pieces), per_piece)
    keys = rng.integers(0, 40, owners.size).astype(np.uint64)
    similarity = lambda a, b: (a == b).mean(axis=1)
    held_once = similar_pairs(keys, nodes, signatures, similarity, 0.6, max_run=max_run, owners=owners)
    repeated = similar_pairs(keys, nodes[owners], signatures[owners], similarity, 0.6, max_run=max_run)
    assert as_list(held_once) == as_list(repeated) and len(held_once.a) > 100
    with pytest.raises(ValueError, match="an owner each"):
        similar_pairs(keys, nodes, signatures, similarity, 0.6, owners=owners[1:])


def test_only_keys_that_another_row_shares_are_candidates():
    keys = np.array([5, 9, 5, 7, 9, 9, 1], dtype=np.uint64)
    assert shared_keys(keys).tolist() == [0, 1, 2, 4, 5]
    assert shared_keys(np.zeros(0, np.uint64)).tolist() == []


def test_tagged_keys_put_the_tag_in_the_top_byte():
    hashes = np.array([0, 2**64 - 1, 12345], dtype=np.uint64)
    keys = tagged_keys(hashes, 7)
    assert (keys >> np.uint64(56)).tolist() == [7, 7, 7]
    assert (keys & np.uint64(2**56 - 1)).tolist() == [0, 2**56 - 1, 12345]
    assert not set(tagged_keys(hashes, 1).tolist()) & set(tagged_keys(hashes, 2).tolist())
    with pytest.raises(ValueError, match="one byte"):
        tagged_keys(hashes, 256)
