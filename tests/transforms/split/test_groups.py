"""transforms.split.groups: groups found bucket by bucket, then joined by the nodes buckets share, against
scipy's components of the whole graph (any buckets, partitions and order)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.split.components import component_of, resolve_residual
from transforms.split.groups import cross_links, groups_of, local_groups

TOP = 2**64 - 1
NODE_IDS = st.integers(0, TOP)


def whole_graph_groups(primary: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The oracle: each document's group from scipy's components of every edge at once."""
    return component_of(primary, *resolve_residual(u, v))


def bucketed_groups(primary, u, v, owner, bucket, partitions: int) -> np.ndarray:
    """Each document's group the way the split stage finds it: local groups per bucket (`bucket` (n,) of
    each document; an edge goes with its `owner` document), cross links per node partition, then resolved."""
    roots = np.empty(primary.size, dtype=np.uint64)
    nodes, node_roots = [], []
    for b in np.unique(bucket):
        mine = bucket == b
        local = np.cumsum(mine) - 1  # a document's index among the bucket's
        edges = mine[owner]
        roots[mine], bucket_nodes, bucket_roots = local_groups(primary[mine], local[owner[edges]], v[edges])
        assert np.all(bucket_nodes[1:] > bucket_nodes[:-1])  # each node once
        nodes.append(bucket_nodes)
        node_roots.append(bucket_roots)
    nodes, node_roots = np.concatenate(nodes), np.concatenate(node_roots)
    links = [cross_links(nodes[nodes % np.uint64(partitions) == p], node_roots[nodes % np.uint64(partitions) == p])
             for p in range(partitions)]
    for a, b in links:
        assert np.all(a > b) and np.unique(a).size == a.size  # a forest: one link per root at most
    a, b = (np.concatenate([np.zeros(0, np.uint64), *(link[i] for link in links)]) for i in (0, 1))
    return groups_of(roots, a, b)


@st.composite
def documents(draw):
    """Documents of a few nodes each (a primary node and edges from it), some nodes shared, in buckets."""
    ids = np.array(draw(st.lists(NODE_IDS, min_size=1, max_size=30, unique=True)), dtype=np.uint64)
    n = draw(st.integers(1, 40))
    pick = st.integers(0, ids.size - 1)
    primary = ids[draw(st.lists(pick, min_size=n, max_size=n))]
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), pick), max_size=40))
    owner = np.array([d for d, _ in edges], dtype=np.intp)
    u, v = primary[owner], ids[np.array([t for _, t in edges], dtype=np.intp)]
    keep = u != v
    bucket = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    return primary, u[keep], v[keep], owner[keep], bucket


@settings(max_examples=200, deadline=None)
@given(documents(), st.sampled_from([1, 2, 3, 7]))
def test_bucketed_groups_are_the_whole_graphs_components(docs, partitions):
    primary, u, v, owner, bucket = docs
    assert bucketed_groups(primary, u, v, owner, bucket, partitions).tolist() == \
        whole_graph_groups(primary, u, v).tolist()


def test_a_chain_across_buckets_is_one_group_named_by_its_smallest_node():
    """Documents i (primary node ids[i]) linked to ids[i + 1], each in its own bucket of three: the chain
    crosses every bucket, and its smallest node names the group of every document."""
    ids = np.random.default_rng(1).permutation(np.arange(1, 1_001, dtype=np.uint64) * np.uint64(7919))
    owner = np.arange(999)
    groups = bucketed_groups(ids, ids[:-1], ids[1:], owner, np.arange(1_000) % 3, partitions=4)
    assert set(groups.tolist()) == {int(ids.min())}


def test_a_bucket_without_edges_links_each_primary_node_to_itself():
    primary = np.array([9, 4, 9, 7], dtype=np.uint64)
    roots, nodes, node_roots = local_groups(primary, np.zeros(0, np.int64), np.zeros(0, np.uint64))
    assert roots.tolist() == [9, 4, 9, 7]
    assert nodes.tolist() == node_roots.tolist() == [4, 7, 9]


def test_cross_links_join_the_roots_a_node_was_found_with():
    """Node 50 is in three buckets (roots 3, 8, 5), node 60 in one; 70 with the same root twice."""
    nodes = np.array([50, 60, 50, 70, 50, 70], dtype=np.uint64)
    roots = np.array([3, 6, 8, 2, 5, 2], dtype=np.uint64)
    a, b = cross_links(nodes, roots)
    assert sorted(zip(a.tolist(), b.tolist())) == [(5, 3), (8, 3)]
    assert [x.size for x in cross_links(np.zeros(0, np.uint64), np.zeros(0, np.uint64))] == [0, 0]
