"""Connected components: the large-star and small-star steps, the last step and its residual, a step read
in chunks, all of them together against scipy on random graphs (any edge order, number of partitions or
chunk size), and the ConnectedComponents stage on the DirectRunner."""
import apache_beam as beam
import numpy as np
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from transforms.split.components import (CHUNK_BYTES, Components, ConnectedComponents, _key_edges, component_of,
                                          components_in_memory, forest, large_star, merged, resolve_residual,
                                          residual_of, small_star, smallest_neighbours, sources_of)
from transforms.stage import StageOutput, SumCounts

TOP = 2**64 - 1


def edges(pairs) -> tuple:
    """[(u, v), ...] -> (u, v) uint64 arrays."""
    pairs = np.array(list(pairs), dtype=np.uint64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def both_directions(pairs) -> tuple:
    """Undirected edges -> directed (u, v) arrays holding each edge from both ends."""
    return edges([*pairs, *((v, u) for u, v in pairs)])


def as_set(a, b) -> set:
    return set(zip(a.tolist(), b.tolist()))


def last_step(pairs) -> tuple:
    """The last step over undirected edges in one chunk: (nodes, smallest, residual_a, residual_b)."""
    u, v = both_directions(pairs)
    sources = sources_of(u, v)
    return (*smallest_neighbours(sources), *forest(*residual_of(u, v, sources)))


def scipy_components(u, v) -> tuple:
    """The oracle: (nodes ascending, the smallest node of each one's component), by scipy."""
    nodes, index = np.unique(np.concatenate([u, v]), return_inverse=True)
    graph = coo_array((np.ones(u.size), (index[:u.size], index[u.size:])), shape=(nodes.size, nodes.size))
    _, labels = connected_components(graph, directed=False)
    smallest = {}
    for node, label in zip(nodes.tolist(), labels.tolist()):
        smallest.setdefault(label, node)
    return nodes, np.array([smallest[label] for label in labels.tolist()], dtype=np.uint64)


def random_ids(n: int, seed: int) -> np.ndarray:
    ids = np.random.default_rng(seed).integers(0, TOP, n, dtype=np.uint64, endpoint=True)
    assert np.unique(ids).size == n
    return ids


# --- the steps --------------------------------------------------------------------------------------------


def test_large_star_links_each_larger_neighbour_to_the_smallest():
    """9's neighbours 4, 7, 12: 12 (> 9) goes to 4; 4 and 7 pass 9 on to themselves; 12 has nothing larger."""
    assert as_set(*large_star(*both_directions([(9, 4), (9, 7), (12, 9)]))) == {(12, 4), (9, 4), (9, 7)}
    assert as_set(*large_star(*both_directions([(1, 2), (2, 3), (3, 4)]))) == {(2, 1), (3, 1), (4, 2)}


def test_small_star_links_a_node_and_its_smaller_neighbours_to_the_smallest():
    """9 and its smaller neighbours 4, 7 go to 4; 12's one smaller neighbour is 9; larger neighbours are
    ignored, so the edges may come from both ends or only from the larger one."""
    expected = {(7, 4), (9, 4), (12, 9)}
    assert as_set(*small_star(*both_directions([(9, 4), (9, 7), (12, 9)]))) == expected
    assert as_set(*small_star(*edges([(9, 4), (9, 7), (12, 9)]))) == expected


def test_steps_give_distinct_edges_larger_end_first():
    pairs = [(1, 5), (2, 5), (3, 5), (5, 1), (1, 5), (6, 2)]
    for step in (large_star, small_star):
        a, b = step(*both_directions(pairs))
        assert np.all(a >= b) and len(as_set(a, b)) == a.size


def test_a_node_keeps_its_loop_only_when_it_has_no_other_edge():
    """5 has only its loop; 8 and 2 have other edges. The small star cannot see 2's larger neighbour 6, so
    it keeps 2's loop (a large star never gives it one)."""
    pairs = [(5, 5), (8, 8), (8, 3), (2, 2), (2, 6)]
    assert as_set(*large_star(*both_directions(pairs))) == {(5, 5), (8, 3), (6, 2)}
    assert as_set(*small_star(*both_directions(pairs))) == {(5, 5), (8, 3), (6, 2), (2, 2)}
    nodes, smallest, residual_a, _ = last_step(pairs)
    assert (nodes.tolist(), smallest.tolist(), residual_a.size) == ([2, 3, 5, 6, 8], [2, 3, 5, 2, 3], 0)


def test_a_star_is_left_as_it_is_with_no_residual():
    star = [(TOP, 2), (2, 10), (7, 2), (2, TOP - 1)]
    expected = {(TOP, 2), (10, 2), (7, 2), (TOP - 1, 2)}
    assert as_set(*large_star(*both_directions(star))) == expected
    assert as_set(*small_star(*both_directions(star))) == expected
    nodes, smallest, residual_a, residual_b = last_step(star)
    assert nodes.tolist() == [2, 7, 10, TOP - 1, TOP]
    assert smallest.tolist() == [2] * 5
    assert residual_a.size == residual_b.size == 0


def test_the_residual_links_the_smaller_neighbours_of_nodes_neither_centre_nor_leaf():
    """Path 1-2-3: 2 has a smaller and a larger neighbour. 9 has two smaller neighbours, 12 three. 3 is a
    leaf of 2; 1, 4 and 5 are centres. The residual edges 2-1, 9-4, 9-6, 12-4, 12-5, 12-6 come as a forest."""
    pairs = [(1, 2), (2, 3), (9, 4), (9, 6), (12, 4), (12, 5), (12, 6)]
    nodes, smallest, residual_a, residual_b = last_step(pairs)
    assert dict(zip(nodes.tolist(), smallest.tolist())) == {1: 1, 2: 1, 3: 2, 4: 4, 5: 5, 6: 6, 9: 4, 12: 4}
    assert as_set(residual_a, residual_b) == {(2, 1), (5, 4), (6, 4), (9, 4), (12, 4)}
    components = component_of(smallest, *resolve_residual(residual_a, residual_b))
    assert dict(zip(nodes.tolist(), components.tolist())) == {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 6: 4, 9: 4, 12: 4}


def test_resolve_residual_gives_each_node_its_components_smallest():
    nodes, roots = resolve_residual(*edges([(10, 3), (3, 7), (TOP, TOP - 1)]))
    assert nodes.tolist() == [3, 7, 10, TOP - 1, TOP]
    assert roots.tolist() == [3, 3, 3, TOP - 1, TOP - 1]
    assert [x.size for x in resolve_residual(*edges([]))] == [0, 0]


def test_component_of_looks_up_the_residual_roots_or_keeps_the_node():
    residual_nodes, residual_roots = np.array([3, 7, TOP], dtype=np.uint64), np.array([3, 3, 3], dtype=np.uint64)
    smallest = np.array([7, 5, 3, TOP, TOP - 1, 0], dtype=np.uint64)
    assert component_of(smallest, residual_nodes, residual_roots).tolist() == [3, 5, 3, 3, TOP - 1, 0]
    assert component_of(smallest, residual_nodes[:0], residual_roots[:0]).tolist() == smallest.tolist()


# --- the steps together, against scipy --------------------------------------------------------------------

NODE_IDS = st.one_of(st.integers(0, 30), st.integers(TOP - 30, TOP), st.integers(0, TOP))
SHAPES = {
    "chain": lambda nodes: list(zip(nodes, nodes[1:])),
    "star": lambda nodes: [(nodes[0], n) for n in nodes[1:]],
    "clique": lambda nodes: [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:]],
    "loops": lambda nodes: [(n, n) for n in nodes],
}


@st.composite
def graphs(draw) -> tuple:
    """(u, v) uint64 arrays: chains, stars, cliques and looped nodes over distinct ids (small, near 2**64 - 1,
    anywhere) drawn in any order, random edges between any of those nodes (joining shapes, looping) and
    repeats of edges, in a random order and direction. Possibly no edge at all."""
    shapes = draw(st.lists(st.tuples(st.sampled_from(sorted(SHAPES)), st.integers(1, 10)), min_size=1, max_size=4))
    total = sum(size for _, size in shapes)
    ids = draw(st.lists(NODE_IDS, min_size=total, max_size=total, unique=True))
    pairs, start = [], 0
    for shape, size in shapes:
        pairs += SHAPES[shape](ids[start:start + size])
        start += size
    pairs += draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=15))
    if pairs:
        pairs += draw(st.lists(st.sampled_from(pairs), max_size=5))
    rng = draw(st.randoms())
    rng.shuffle(pairs)
    return edges((v, u) if rng.random() < 0.5 else (u, v) for u, v in pairs)


@settings(max_examples=50, deadline=None)
@given(graphs(), st.randoms())
def test_a_step_over_chunks_gives_what_it_gives_over_the_whole_partition(graph, rng):
    """Each chunk's edges, with the Sources merged from every chunk, give the edges of the whole."""
    u, v = np.concatenate(graph), np.concatenate(graph[::-1])
    order = rng.sample(range(u.size), u.size)
    cuts = sorted(rng.sample(range(u.size + 1), min(3, u.size + 1)))
    chunks = [(u[order[a:b]], v[order[a:b]]) for a, b in zip([0, *cuts], [*cuts, u.size])]
    sources = merged([sources_of(*chunk) for chunk in chunks])
    assert [x.tolist() for x in sources] == [x.tolist() for x in sources_of(u, v)]
    for step in (large_star, small_star, residual_of):
        assert set().union(*(as_set(*step(*chunk, sources)) for chunk in chunks)) == as_set(*step(u, v, sources))


@settings(max_examples=100, deadline=None)
@given(graphs(), st.sampled_from([1, 2, 7]), st.integers(0, 3), st.sampled_from([16, 100, CHUNK_BYTES]))
def test_the_steps_give_scipys_components_labelled_by_their_smallest_node(graph, partitions, rounds, chunk_bytes):
    """In any number of partitions, and in chunks of one edge, a few edges or all."""
    got = components_in_memory(*graph, partitions, rounds, chunk_bytes)
    nodes, expected = scipy_components(*graph)
    assert got.nodes.tolist() == nodes.tolist()
    assert got.components.tolist() == expected.tolist()


@settings(max_examples=30, deadline=None)
@given(graphs(), st.randoms(), st.integers(0, 3))
def test_the_result_depends_on_neither_the_edge_order_nor_the_partitions(graph, rng, rounds):
    """Not even the residual's size depends on the edge order or the chunks; it does on the partitions (each
    makes a forest of its own)."""
    u, v = graph
    first = components_in_memory(u, v, 1, rounds)
    for partitions in (1, 2, 7):
        order = rng.sample(range(u.size), u.size)
        flip = np.array([rng.random() < 0.5 for _ in order], dtype=bool)
        got = components_in_memory(np.where(flip, v, u)[order], np.where(flip, u, v)[order], partitions, rounds, 48)
        assert got.nodes.tolist() == first.nodes.tolist()
        assert got.components.tolist() == first.components.tolist()
        assert got.residual_edges == components_in_memory(u, v, partitions, rounds).residual_edges


def test_a_long_chain_in_one_round_is_finished_by_the_residual():
    ids = random_ids(10_000, seed=1)
    order = np.random.default_rng(2).permutation(ids.size - 1)
    got = components_in_memory(ids[:-1][order], ids[1:][order], partitions=4, rounds=1)
    assert got.residual_edges > 0
    assert got.nodes.tolist() == np.sort(ids).tolist()
    assert set(got.components.tolist()) == {int(ids.min())}


def test_enough_rounds_leave_no_residual_for_a_star_or_queries_with_their_documents():
    """A star of 1,000 leaves; 50 queries each with 20 rows, a row linked to its query's content and to
    its document's content (shared by two rows of the same query now and then)."""
    ids = random_ids(1 + 1_000 + 50 + 1_000 + 1_000, seed=3)
    centre, leaves, queries, rows, documents = np.split(ids, [1, 1_001, 1_051, 2_051])
    star = (np.repeat(centre, leaves.size), leaves)
    query_of_row = np.repeat(np.arange(50), 20)
    row = np.arange(1_000)
    document_of_row = row - ((row % 7 == 6) & (row % 20 != 0))  # now and then the previous row's document
    pairs_like = (np.concatenate([rows, rows]), np.concatenate([queries[query_of_row], documents[document_of_row]]))
    for u, v in (star, pairs_like):
        assert components_in_memory(u, v, partitions=3, rounds=0).residual_edges > 0
        got = components_in_memory(u, v, partitions=3, rounds=3)
        assert got.residual_edges == 0
        assert got.components.tolist() == scipy_components(u, v)[1].tolist()
    assert np.unique(components_in_memory(*pairs_like, partitions=3).components).size == 50


# --- the stage --------------------------------------------------------------------------------------------


def beam_graph() -> tuple:
    """A shuffled chain of 300 nodes, stars, random edges among 200 nodes, loops, ids near 2**64 - 1."""
    rng = np.random.default_rng(4)
    chain = random_ids(300, seed=5)
    pairs = [*zip(chain[:-1].tolist(), chain[1:].tolist()), *((TOP, TOP - k) for k in range(1, 40)),
             *((7, 1000 + k) for k in range(60)), (TOP - 50, TOP - 50), (3, 3), (3, 4),
             *rng.integers(10_000, 10_200, (150, 2)).tolist()]
    rng.shuffle(pairs)
    return edges(pairs)


def batches(u, v, size: int) -> list:
    """Edges as (n, 2) uint64 arrays of `size` edges."""
    pairs = np.column_stack([u, v])
    return [pairs[i:i + size] for i in range(0, len(pairs), size)]


def matches(expected: Components):
    def match(outputs):
        for nodes, components in outputs:
            assert np.all(nodes[1:] > nodes[:-1]) and components.shape == nodes.shape
        nodes = np.concatenate([n for n, _ in outputs] or [np.zeros(0, np.uint64)])
        components = np.concatenate([c for _, c in outputs] or [np.zeros(0, np.uint64)])
        order = np.argsort(nodes)
        assert nodes[order].tolist() == expected.nodes.tolist()  # every node, once
        assert components[order].tolist() == expected.components.tolist()
    return match


def expected_counts(expected: Components, rounds: int) -> dict:
    counts = {"component_rounds": rounds, "component_residual_edges": expected.residual_edges,
              "component_nodes": expected.nodes.size, "components": np.unique(expected.components).size}
    return {name: value for name, value in sorted(counts.items()) if value}


def check_stage(p, label: str, graph: tuple, partitions: int, rounds: int, chunk_bytes: int = CHUNK_BYTES) -> None:
    expected = components_in_memory(*graph, partitions, rounds)
    flow = (StageOutput.start(p | f"{label}Edges" >> beam.Create(batches(*graph, 64)))
            | label >> ConnectedComponents(partitions, rounds, chunk_bytes))
    assert_that(flow.main, matches(expected), label=f"{label}Main")
    counts = (flow.counts | f"{label}Flatten" >> beam.Flatten(pipeline=p)
              | f"{label}Sum" >> beam.CombineGlobally(SumCounts()))
    assert_that(counts, equal_to([expected_counts(expected, rounds)]), label=f"{label}Counts")


def test_connected_components_stage_gives_the_in_memory_result():
    """On the DirectRunner's engine (as pipelines/prepare/run.py runs it), which encodes every element that
    crosses a stage with its coder: a graph whose residual has work to do, in three partitions read in
    chunks of 16 edges and in one partition, and no edges at all."""
    graph = beam_graph()
    assert components_in_memory(*graph, 3, 1).residual_edges > 0
    with TestPipeline(runner=FnApiRunner()) as p:
        check_stage(p, "ThreePartitions", graph, 3, 1, chunk_bytes=256)
        check_stage(p, "OnePartitionNoRound", graph, 1, 0)
        check_stage(p, "NoEdges", edges([]), 2, 0)


def test_edges_must_be_uint64_pairs():
    for bad in (np.zeros((4, 2), dtype=np.int64), np.zeros(4, dtype=np.uint64)):
        with pytest.raises(ValueError, match=r"edges must be an \(n, 2\) uint64 array"):
            list(_key_edges(bad, 2))
