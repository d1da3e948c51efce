"""Connected components of a graph whose nodes are uint64 hashes, computed at scale.

A component's id is its smallest node, so the answer depends only on the set of edges: not on their order,
the runner, the number of workers or of partitions.

The algorithm is Large-Star / Small-Star (Kiveris et al., "Connected Components in MapReduce and Beyond",
2014). Each step groups directed edges by their source node and rewires each source's neighbourhood
towards its smallest member, with the same components:

- large star: every neighbour larger than u is linked to m(u), the smallest of u and its neighbours;
- small star: u and its neighbours smaller than u are linked to the smallest of them.

A few rounds of both leave every component a star or close to one. The last step then gives each node its
m(u) and keeps the residual: the edges to smaller neighbours of the nodes that are not yet a star's centre
or leaf, reduced in each partition to a forest (one edge per node). Resolving that residual in one place
gives the component of every m(u), hence of every node; its size, counted, says whether more rounds pay.
Self-loops are dropped, except on a node that has no other edge: there the loop keeps the node, its own
component.

`ConnectedComponents` runs this in Beam over numpy edge arrays that cross every shuffle as bytes
(`transforms/coders.py` says why): per round, one GroupByKey for the large star (each edge from both ends)
and one for the small star (each edge from its larger end); then one for the last step, a side input for
the residual (read by one step that runs once), and a CoGroupByKey that joins nodes, keyed by their m(u),
with the residual's roots. The partition of a node is `node % partitions`. A step reads its partition's
edges in chunks of about `chunk_bytes`, twice: first for the Sources (each source's smallest and largest
neighbours), then for each chunk's new edges. So a worker holds a chunk of edges and the Sources of its
partition, never more, even for the centre of a giant component, whose neighbourhood is the whole
component. `components_in_memory` runs the same steps over the same partitions and chunks in one process.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

from typing import Iterable, Iterator, NamedTuple, Optional, Tuple

import apache_beam as beam
import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from transforms.stage import COUNTS, MAIN, Output, SplitOutputs, StageOutput, count

STAGE = "components"
RESIDUAL = "residual"  # the kind of Output that carries a partition's residual edges
KEYED = Tuple[int, bytes]  # (partition, pairs as bytes): what crosses a GroupByKey
_WIRE = np.dtype("<u8")  # pairs on the wire: (n, 2) little-endian uint64
_EMPTY = np.zeros(0, dtype=np.uint64)
_SMALLEST, _ROOTS = "smallest", "roots"  # the two sides of the final join
CHUNK_BYTES = 32 << 20  # a step emits a partition's edges in elements of about this size


# --- the steps, in numpy ----------------------------------------------------------------------------------


class Sources(NamedTuple):
    """What a step needs to know of each source node, from all of its edges in the partition: the sources
    ascending and, for each, its smallest and largest neighbour and its largest neighbour smaller than
    itself (0 when it has none). A step reads a partition's edges in chunks, with the Sources of them all."""

    nodes: np.ndarray
    low: np.ndarray
    high: np.ndarray
    below: np.ndarray


def sources_of(u: np.ndarray, v: np.ndarray) -> Sources:
    """Directed edges u -> v (uint64 arrays) -> the Sources of their source nodes."""
    order = np.argsort(u)
    u, v = u[order], v[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if u.size else np.zeros(0, dtype=np.intp)
    below = np.maximum.reduceat(np.where(v < u, v, np.uint64(0)), starts)
    return Sources(u[starts], np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts), below)


def merged(parts: list) -> Sources:
    """The Sources of several chunks of edges -> the Sources of all of them."""
    nodes, low, high, below = _columns(parts, 4)
    order = np.argsort(nodes)
    nodes = nodes[order]
    starts = np.flatnonzero(np.r_[True, nodes[1:] != nodes[:-1]]) if nodes.size else np.zeros(0, dtype=np.intp)
    return Sources(nodes[starts], np.minimum.reduceat(low[order], starts), np.maximum.reduceat(high[order], starts),
                   np.maximum.reduceat(below[order], starts))


def positions(ascending: np.ndarray, values: np.ndarray) -> np.ndarray:
    """An ascending uint64 array (k,), k > 0, and values (n,) -> (n,) the index of each value in it, or of
    where it would go, at most k - 1 (searched in ascending order: four times faster than in any order)."""
    order = np.argsort(values)
    at = np.empty(values.size, dtype=np.intp)
    at[order] = np.minimum(np.searchsorted(ascending, values[order]), ascending.size - 1)
    return at


def _at(sources: Sources, u: np.ndarray) -> np.ndarray:
    """Source nodes u (uint64 array) -> the index of each in sources.nodes."""
    return positions(sources.nodes, u) if u.size else np.zeros(0, dtype=np.intp)


def _distinct(a: np.ndarray, b: np.ndarray) -> tuple:
    """Pairs (a, b) -> the distinct pairs, sorted by a, then b."""
    order = np.argsort(b)
    order = order[np.argsort(a[order], kind="stable")]
    a, b = a[order], b[order]
    fresh = np.ones(a.size, dtype=bool)
    fresh[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[fresh], b[fresh]


def large_star(u: np.ndarray, v: np.ndarray, sources: Optional[Sources] = None) -> tuple:
    """One large-star step over directed edges u -> v (uint64 arrays), given the Sources of every edge of
    their partition (by default, of these edges), which holds every neighbour of each source: each neighbour
    v > u is linked to m(u), the smallest of u and its neighbours; a node whose only neighbour is itself
    keeps its loop.

    Returns the new undirected edges as (a, b) uint64 arrays, distinct, a >= b."""
    sources = sources_of(u, v) if sources is None else sources
    at = _at(sources, u)
    smallest = np.minimum(sources.low, sources.nodes)[at]
    alone = (smallest == u) & (sources.high[at] == u)
    keep = (v > u) | alone  # an alone node's edges are its loop: (v, m(u)) = (u, u)
    return _distinct(v[keep], smallest[keep])


def small_star(u: np.ndarray, v: np.ndarray, sources: Optional[Sources] = None) -> tuple:
    """One small-star step over directed edges u -> v (uint64 arrays), given the Sources of every edge of
    their partition (by default, of these edges), which holds every neighbour v <= u of each source; edges
    with v > u are ignored: u and its smaller neighbours are linked to the smallest of them. A loop u -> u
    is kept when u has no smaller neighbour (its larger ones are not seen here; after a large star, only a
    node with no other edge has a loop).

    Returns the new undirected edges as (a, b) uint64 arrays, distinct, a >= b."""
    sources = sources_of(u, v) if sources is None else sources
    keep = v <= u
    u, v = u[keep], v[keep]
    smallest = sources.low[_at(sources, u)]  # u has a neighbour <= u: the smallest is one
    other = v != smallest
    return _distinct(np.concatenate([v[other], u]), np.concatenate([smallest[other], smallest]))


def smallest_neighbours(sources: Sources) -> tuple:
    """The last step's Sources, which hold every neighbour of each source -> (nodes, smallest): each source
    once, and m(node), the smallest of the node and its neighbours."""
    return sources.nodes, np.minimum(sources.low, sources.nodes)


def residual_of(u: np.ndarray, v: np.ndarray, sources: Sources) -> tuple:
    """Directed edges u -> v of the last step (uint64 arrays) and the Sources of their partition -> the
    residual edges among them (a, b), a > b: the edges from each node that is neither a star's centre (no
    smaller neighbour) nor a leaf (one neighbour, smaller) to its smaller neighbours. Every m(u) of a
    component is connected to the others through them, so a node's component is the smallest node connected
    to its m(u) in the residual graph (see resolve_residual), or m(u) when m(u) is not in it. Empty when
    every component is a star."""
    unsettled = (sources.low < sources.nodes) & ((sources.high > sources.nodes) | (sources.below != sources.low))
    keep = (v < u) & unsettled[_at(sources, u)]
    return u[keep], v[keep]


def forest(a: np.ndarray, b: np.ndarray) -> tuple:
    """Edges (a, b) -> a forest with the same connections, as edges (a, b), a > b: each node but the
    smallest of its tree linked to that smallest one (one edge per node, however many edges it had)."""
    nodes, roots = resolve_residual(a, b)
    linked = nodes != roots
    return nodes[linked], roots[linked]


def resolve_residual(a: np.ndarray, b: np.ndarray) -> tuple:
    """Residual edges (a, b) (uint64 arrays) -> (nodes, roots): every node of the residual graph ascending,
    and the smallest node of its component there."""
    nodes, index = np.unique(np.concatenate([a, b]), return_inverse=True)
    return nodes, smallest_connected(nodes, index[:a.size], index[a.size:])


def smallest_connected(nodes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Nodes ascending (k,) uint64 and edges between them as indices into nodes (a, b) (m,) -> (k,) uint64
    the smallest node connected to each, itself when it has no edge (scipy's connected_components)."""
    graph = coo_array((np.ones(a.size, dtype=np.int32), (a, b)), shape=(nodes.size, nodes.size))
    count, labels = connected_components(graph, directed=False)
    first = np.full(count, nodes.size, dtype=np.intp)  # nodes ascend: a label's first node is its smallest
    np.minimum.at(first, labels, np.arange(nodes.size))
    return nodes[first[labels]]


def component_of(smallest: np.ndarray, residual_nodes: np.ndarray, residual_roots: np.ndarray) -> np.ndarray:
    """Each node's m(u) -> its component: the residual root of m(u), or m(u) itself when it is not among the
    residual nodes (ascending, as resolve_residual gives them)."""
    if not residual_nodes.size:
        return smallest
    at = positions(residual_nodes, smallest)
    return np.where(residual_nodes[at] == smallest, residual_roots[at], smallest)


def _star_partition(step, chunks) -> Iterator[tuple]:
    """A star step over the chunks (u, v) of a partition (an iterable read twice) -> its edges, chunk by
    chunk: no more than a chunk of edges is held at once, however large a node's neighbourhood."""
    sources = merged([sources_of(u, v) for u, v in chunks])
    for u, v in chunks:
        yield step(u, v, sources)


def _last_partition(chunks) -> tuple:
    """The last step over the chunks (u, v) of a partition (an iterable read twice) -> (nodes, smallest,
    residual_a, residual_b), the residual as a forest."""
    sources = merged([sources_of(u, v) for u, v in chunks])
    return (*smallest_neighbours(sources), *forest(*_columns([residual_of(u, v, sources) for u, v in chunks], 2)))


def _columns(rows: list, width: int) -> tuple:
    """Tuples of `width` arrays -> each position's arrays concatenated (empty uint64 arrays when none)."""
    return tuple(np.concatenate([_EMPTY, *(row[i] for row in rows)]) for i in range(width))


def _route(a: np.ndarray, b: np.ndarray, partitions: int, both_directions: bool) -> Iterator[tuple]:
    """Undirected edges (a, b) -> (partition, sources, targets) for each partition that has edges: each edge
    from both of its ends (a loop once), or only from `a`; a partition holds the sources `% partitions`."""
    if both_directions:
        other = a != b
        a, b = np.concatenate([a, b[other]]), np.concatenate([b, a[other]])
    part = a % np.uint64(partitions)
    order = np.argsort(part, kind="stable")
    a, b, part = a[order], b[order], part[order]
    starts = np.flatnonzero(np.r_[True, part[1:] != part[:-1]]) if part.size else part
    for start, end in zip(starts, np.r_[starts[1:], part.size]):
        yield int(part[start]), a[start:end], b[start:end]


def _gathered(outputs: Iterable[tuple], partitions: int, both_directions: bool, chunk_bytes: int) -> Iterator[tuple]:
    """A step's edges (a, b), output by output -> (partition, sources, targets) chunks for the next step
    (see _route): each partition's edges gathered over outputs until `chunk_bytes` are held in all, so that
    chunks stay few and memory bounded."""
    held: dict[int, list] = {}
    size = 0
    for a, b in outputs:
        for partition, sources, targets in _route(a, b, partitions, both_directions):
            held.setdefault(partition, []).append((sources, targets))
            size += sources.nbytes + targets.nbytes
        if size >= chunk_bytes:
            yield from ((partition, *_columns(part, 2)) for partition, part in held.items())
            held, size = {}, 0
    yield from ((partition, *_columns(part, 2)) for partition, part in held.items())


class Components(NamedTuple):
    """Every node of the graph ascending, its component (the component's smallest node), and the number of
    residual edges that were resolved in one place."""

    nodes: np.ndarray
    components: np.ndarray
    residual_edges: int


def components_in_memory(u: np.ndarray, v: np.ndarray, partitions: int = 1, rounds: int = 3,
                         chunk_bytes: int = CHUNK_BYTES) -> Components:
    """The edges (u, v) (uint64 arrays) -> their Components, by the steps of ConnectedComponents over the
    same partitions and chunks, in one process: for tests, measurements and graphs that fit in memory."""
    batch = max(1, chunk_bytes // 32)  # edges in a chunk, taken from both ends
    chunks = _regroup(_gathered(((u[i:i + batch], v[i:i + batch]) for i in range(0, u.size, batch)), partitions,
                                True, chunk_bytes))
    for _ in range(rounds):
        chunks = _regroup(_gathered((out for part in chunks for out in _star_partition(large_star, part)),
                                    partitions, False, chunk_bytes))
        chunks = _regroup(_gathered((out for part in chunks for out in _star_partition(small_star, part)),
                                    partitions, True, chunk_bytes))
    nodes, smallest, residual_a, residual_b = _columns([_last_partition(part) for part in chunks], 4)
    components = component_of(smallest, *resolve_residual(residual_a, residual_b))
    order = np.argsort(nodes)
    return Components(nodes[order], components[order], residual_a.size)


def _regroup(chunks: Iterable[tuple]) -> list:
    """(partition, sources, targets) chunks -> each partition's list of (sources, targets) chunks."""
    parts: dict[int, list] = {}
    for partition, sources, targets in chunks:
        parts.setdefault(partition, []).append((sources, targets))
    return list(parts.values())


# --- the transform ----------------------------------------------------------------------------------------


def _to_bytes(a: np.ndarray, b: np.ndarray) -> bytes:
    return np.column_stack([a, b]).astype(_WIRE, copy=False).tobytes()


def _pairs(data: bytes) -> tuple:
    pairs = np.frombuffer(data, dtype=_WIRE).reshape(-1, 2)
    return pairs[:, 0].astype(np.uint64), pairs[:, 1].astype(np.uint64)


class _Chunks:
    """A partition's grouped elements (bytes) as (u, v) chunks, decoded each time they are read."""

    def __init__(self, elements: Iterable[bytes]):
        self._elements = elements

    def __iter__(self) -> Iterator[tuple]:
        return map(_pairs, self._elements)


def _keyed(chunks: Iterator[tuple]) -> Iterator[tuple]:
    return ((partition, _to_bytes(sources, targets)) for partition, sources, targets in chunks)


def _key_edges(edges: np.ndarray, partitions: int) -> Iterator[tuple]:
    """An (n, 2) uint64 array of edges -> (partition, directed edges as bytes), each edge from both ends."""
    if edges.dtype != np.uint64 or edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges must be an (n, 2) uint64 array, not {edges.dtype} of shape {edges.shape}")
    yield from _keyed(_route(edges[:, 0], edges[:, 1], partitions, True))


def _star_step(element: tuple, step, partitions: int, both_directions: bool, chunk_bytes: int) -> Iterator[tuple]:
    """(partition, [directed edges as bytes]) -> the step's edges, keyed for the next step."""
    outputs = _star_partition(step, _Chunks(element[1]))
    yield from _keyed(_gathered(outputs, partitions, both_directions, chunk_bytes))


def _last_step(element: tuple, partitions: int, chunk_bytes: int) -> Iterator[Output]:
    """(partition, [directed edges as bytes]) -> Output(MAIN, (partition of m(u), (m(u), node) pairs as
    bytes)) and Output(RESIDUAL, residual edges as bytes)."""
    nodes, smallest, residual_a, residual_b = _last_partition(_Chunks(element[1]))
    yield from (Output(MAIN, keyed) for keyed in _keyed(_gathered([(smallest, nodes)], partitions, False, chunk_bytes)))
    if residual_a.size:
        yield Output(RESIDUAL, _to_bytes(residual_a, residual_b))


def _resolve_step(_, residual: list, partitions: int, rounds: int) -> Iterator[Output]:
    """Every partition's residual edges -> Output(MAIN, (partition, (node, root) pairs as bytes)) for the
    residual's nodes; Output(COUNTS, rounds and residual edges)."""
    residual_a, residual_b = _columns([_pairs(data) for data in residual], 2)
    roots = resolve_residual(residual_a, residual_b)
    yield from (Output(MAIN, keyed) for keyed in _keyed(_route(*roots, partitions, False)))
    yield Output(COUNTS, count(STAGE, component_rounds=rounds, component_residual_edges=residual_a.size))


def _label_step(element: tuple) -> Iterator[Output]:
    """(partition, {(m(u), node) chunks, its residual roots}) -> Output(MAIN, (nodes ascending, components))
    per chunk; Output(COUNTS, nodes and components)."""
    roots = _columns([_pairs(data) for data in element[1][_ROOTS]], 2)
    for smallest, nodes in _Chunks(element[1][_SMALLEST]):
        components = component_of(smallest, *roots)
        order = np.argsort(nodes)
        yield Output(MAIN, (nodes[order], components[order]))
        yield Output(COUNTS, count(STAGE, component_nodes=nodes.size, components=int((components == nodes).sum())))


class ConnectedComponents(beam.PTransform):
    """Stage: main = (n, 2) uint64 arrays of undirected edges -> main = (nodes, components) pairs of uint64
    arrays, nodes ascending, covering every node of an edge once; a component is its smallest node.

    Counts: component_rounds, component_residual_edges (resolved in one place), component_nodes,
    components. `partitions` is the number of groups per step; `rounds` of large and small stars; a step
    holds a chunk of about `chunk_bytes` of edges at a time, and its outputs go in elements of that size."""

    def __init__(self, partitions: int, rounds: int = 3, chunk_bytes: int = CHUNK_BYTES):
        super().__init__()
        if partitions < 1 or rounds < 0:
            raise ValueError(f"need partitions >= 1 and rounds >= 0, not {partitions} and {rounds}")
        self._partitions, self._rounds, self._chunk_bytes = partitions, rounds, chunk_bytes

    def expand(self, flow: StageOutput) -> StageOutput:
        partitions, chunk_bytes = self._partitions, self._chunk_bytes
        edges = flow.main | "KeyEdges" >> beam.FlatMap(_key_edges, partitions).with_output_types(KEYED)
        for r in range(1, self._rounds + 1):
            large = beam.FlatMap(_star_step, large_star, partitions, False, chunk_bytes).with_output_types(KEYED)
            small = beam.FlatMap(_star_step, small_star, partitions, True, chunk_bytes).with_output_types(KEYED)
            edges = (edges
                     | f"GroupLargeStar{r}" >> beam.GroupByKey() | f"LargeStar{r}" >> large
                     | f"GroupSmallStar{r}" >> beam.GroupByKey() | f"SmallStar{r}" >> small)
        last = (edges
                | "GroupLast" >> beam.GroupByKey()
                | "Smallest" >> beam.FlatMap(_last_step, partitions, chunk_bytes).with_output_types(Output)
                | "SplitSmallest" >> SplitOutputs((MAIN, RESIDUAL), KEYED))
        # The roots reach the nodes by a join, not a side input: Beam 2.77's DaskRunner computes a side input
        # wrongly when it shares upstream steps with the main input (the residual's main input is its own).
        roots = (flow.main.pipeline
                 | "StartResolve" >> beam.Create([None])
                 | "Resolve" >> beam.FlatMap(_resolve_step, beam.pvalue.AsList(last[RESIDUAL]), partitions,
                                             self._rounds).with_output_types(Output)
                 | "SplitResolve" >> SplitOutputs((MAIN, COUNTS), KEYED))
        labelled = ({_SMALLEST: last[MAIN], _ROOTS: roots[MAIN]}
                    | "JoinRoots" >> beam.CoGroupByKey()
                    | "Label" >> beam.FlatMap(_label_step).with_output_types(Output)
                    | "SplitLabel" >> SplitOutputs((MAIN, COUNTS)))
        counts = (roots[COUNTS], labelled[COUNTS]) | "AllCounts" >> beam.Flatten()
        return flow.advance(labelled[MAIN], None, counts)
