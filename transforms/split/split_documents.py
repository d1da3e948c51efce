"""Split stage: each write bucket's finished documents -> the same documents with their `split`, chosen so
that no group straddles two splits (a group: documents joined by shared content, a near-duplicate cluster
or, where the split keeps labels whole, a shared label; transforms/split/nodes.py).

    (bucket, table) -> park the table in the staging folder; its graph's local groups (transforms/split/
                       groups.py) give each document's local root, and the bucket's (node, root) links
    links       -> grouped by node partition: the cross links that join local roots of several buckets
    documents + cross links -> one plan step: every document's group, every group's split (transforms/
                   split/assign.py), per-split counts and the largest groups (written to the staging folder
                   for the manifest); each bucket's splits sent back in the parked table's row order
    (bucket, path) + (bucket, splits) -> the parked table with its `split` column, for the write stage

The plan step is the only place where data meets in one worker: 32 bytes per document (its local root,
stratum, label and row hashes) and the cross links, never the documents or the graph. Joins, not side
inputs, carry data between branches that share upstream steps (Beam 2.77's DaskRunner computes such side
inputs wrongly); the plan's one side input shares nothing with its main input.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import json
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.options import SplitOptions
from transforms.coders import BUCKET_TABLE
from transforms.hashing import category_hashes, column_hashes, combined_hashes
from transforms.split.assign import large_groups, plan_splits
from transforms.split.groups import cross_links, groups_of, local_groups
from transforms.split.nodes import document_graph, keeps_labels_whole, label_hashes
from transforms.split.parking import park, park_parts, unpark, unpark_part
from transforms.split.report import REPORT
from transforms.stage import COUNTS, MAIN, Output, SplitOutputs, StageOutput, count
from transforms.storage import join_url, write_bytes

STAGE = "split"
LINKS, DOCUMENTS, CROSS_LINKS = "links", "documents", "cross_links"
_PARKED, _SPLITS = "parked", "splits"
_WIRE = np.dtype("<u8")  # cross links on the wire: (n, 2) little-endian uint64
_EMPTY = np.zeros(0, dtype=np.uint64)


def document_rows(table: pa.Table, roots: np.ndarray, labels: np.ndarray, stratified: bool) -> pa.RecordBatch:
    """A bucket's documents (n rows), their (n,) local roots and label_hashes -> one row per document, in the
    table's order: root, stratum (its label hash when stratified, else 0), label hash (0 without a label)
    and row hash (source file and row)."""
    rows = combined_hashes([category_hashes(_array(table.column("source_file"))),
                            column_hashes(_array(table.column("source_row")))])
    stratum = labels if stratified else np.zeros(table.num_rows, np.uint64)
    return pa.RecordBatch.from_pydict({"root": roots, "stratum": stratum, "label": labels, "row": rows})


def _pairs_bytes(a: np.ndarray, b: np.ndarray) -> bytes:
    return np.column_stack([a, b]).astype(_WIRE, copy=False).tobytes()


def _bytes_pairs(data: bytes) -> tuple:
    pairs = np.frombuffer(data, dtype=_WIRE).reshape(-1, 2).astype(np.uint64)
    return pairs[:, 0], pairs[:, 1]


def links_by_partition(nodes: np.ndarray, roots: np.ndarray, partitions: int) -> list[tuple[int, pa.RecordBatch]]:
    """A bucket's links (node, local root) (k,) uint64 -> (partition, its links as a record batch of node
    and root) for each partition (node % partitions) present, ascending."""
    partition = nodes % np.uint64(partitions)
    order = np.argsort(partition, kind="stable")
    partition = partition[order]
    links = pa.RecordBatch.from_pydict({"node": nodes[order], "root": roots[order]})
    starts = np.flatnonzero(np.r_[True, partition[1:] != partition[:-1]]) if partition.size else partition
    return [(int(partition[start]), links.slice(start, end - start))
            for start, end in zip(starts, np.r_[starts[1:], partition.size])]


class _ParkFn(beam.DoFn):
    """(bucket, table) -> the table, its document rows and its links parked in the staging folder (transforms/
    split/parking.py): Output(MAIN, (bucket, table path)), Output(DOCUMENTS, (bucket, rows path)),
    Output(LINKS, (partition, links path)) per node partition."""

    def __init__(self, staging: str, keep_labels: bool, stratified: bool, partitions: int):
        self._staging, self._keep_labels, self._stratified, self._partitions = staging, keep_labels, stratified, partitions

    def process(self, element) -> Iterator[Output]:
        bucket, table = element
        path = join_url(self._staging, "split", f"b{bucket:05d}")
        park(table, f"{path}.arrow")
        yield Output(MAIN, (bucket, f"{path}.arrow"))
        labels = label_hashes(table.column("label"))
        roots, nodes, node_roots = local_groups(*document_graph(table, self._keep_labels, labels))
        rows = document_rows(table, roots, labels, self._stratified)
        park(pa.Table.from_batches([rows]), f"{path}-rows.arrow")
        yield Output(DOCUMENTS, (bucket, f"{path}-rows.arrow"))
        parts = links_by_partition(nodes, node_roots, self._partitions)
        if parts:
            park_parts(parts, f"{path}-links.arrow")
            yield from (Output(LINKS, (partition, f"{path}-links.arrow")) for partition, _ in parts)


def _cross_links_step(element: tuple) -> Iterator[Output]:
    """(partition, [links paths]) -> Output(CROSS_LINKS, the partition's cross links as bytes), if any."""
    partition, paths = element
    links = pa.Table.from_batches([unpark_part(path, partition) for path in sorted(paths)])
    a, b = cross_links(_numpy(links, "node"), _numpy(links, "root"))
    if a.size:
        yield Output(CROSS_LINKS, _pairs_bytes(a, b))


def _distinct_per_split(values: np.ndarray, split: np.ndarray, splits: int) -> list[int]:
    """(n,) uint64 values and their (n,) split indices -> the number of distinct values in each split (by
    sorting: numpy's hashed np.unique is many times slower on hashes)."""
    counts = []
    for i in range(splits):
        mine = np.sort(values[split == i])
        counts.append(int(np.count_nonzero(mine[1:] != mine[:-1])) + int(mine.size > 0))
    return counts


def _plan_step(_, gathered: list, options: SplitOptions, staging: str) -> Iterator[Output]:
    """Every bucket's document rows and every partition's cross links (Outputs) -> Output(MAIN, (bucket,
    int8 split indices in its table's row order, as bytes)) per bucket; Output(COUNTS, per split:
    documents, groups, labels, rows, and the cross links); the report file in the staging folder."""
    buckets = [(bucket, unpark(path)) for bucket, path in sorted(output.value for output in gathered
                                                                 if output.kind == DOCUMENTS)]
    links = [_bytes_pairs(output.value) for output in gathered if output.kind == CROSS_LINKS]
    if not buckets:
        write_bytes(json.dumps({"largest_groups": []}).encode(), join_url(staging, REPORT))
        return
    documents = pa.concat_tables([rows for _, rows in buckets])
    a, b = (np.concatenate([_EMPTY, *(pair[i] for pair in links)]) for i in (0, 1))
    # Each distinct local root's group (a local root stands for many documents: a label's, in each bucket),
    # then each document's group index through its root: the documents are sorted once, not three times.
    roots, root_of, per_root = np.unique(_numpy(documents, "root"), return_inverse=True, return_counts=True)
    groups, group_of_root = np.unique(groups_of(roots, a, b), return_inverse=True)
    index = group_of_root[root_of]
    sizes = np.bincount(group_of_root, weights=per_root, minlength=len(groups)).astype(np.int64)
    strata = np.full(len(groups), np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(strata, index, _numpy(documents, "stratum"))
    plan = plan_splits(groups, sizes, strata, tuple(f for _, f in options.fractions), options.seed)
    split = plan.splits[index]  # plan.groups is `groups`: ascending already
    names = options.names
    label = _numpy(documents, "label")
    labels = _distinct_per_split(label[label != 0], split[label != 0], len(names))
    rows = _distinct_per_split(_numpy(documents, "row"), split, len(names))
    documents_in = np.bincount(split, minlength=len(names))
    groups_in = np.bincount(plan.splits, minlength=len(names))
    numbers = {f"split.{name}.{kind}": int(value) for i, name in enumerate(names)
               for kind, value in (("documents", documents_in[i]), ("groups", groups_in[i]),
                                   ("labels", labels[i]), ("rows", rows[i]))}
    yield Output(COUNTS, count(STAGE, split_cross_links=a.size, **numbers))
    write_bytes(json.dumps({"largest_groups": large_groups(plan, names)}).encode(), join_url(staging, REPORT))
    start = 0
    for bucket, rows_of_bucket in buckets:
        yield Output(MAIN, (bucket, split[start:start + rows_of_bucket.num_rows].tobytes()))
        start += rows_of_bucket.num_rows


class _LabelSplitsFn(beam.DoFn):
    """(bucket, {parked: [path], splits: [int8 split indices as bytes]}) -> Output(MAIN, (bucket, table
    with its `split` column))."""

    def __init__(self, names: tuple):
        self._names = pa.array(names, type=pa.string())

    def process(self, element) -> Iterator[Output]:
        bucket, joined = element
        (path,), (data,) = joined[_PARKED], joined[_SPLITS]
        table = unpark(path)
        names = pc.take(self._names, pa.array(np.frombuffer(data, dtype=np.int8)))
        index = table.schema.get_field_index("split")
        yield Output(MAIN, (bucket, table.set_column(index, table.schema.field(index), names)))


def _is(output: Output, kind: str) -> bool:
    return output.kind == kind


class SplitDocuments(beam.PTransform):
    """Stage: main = (bucket, documents Table) pairs -> main = the same pairs, each document's `split` set.

    Counts: split.NAME.{documents, groups, labels, rows} and split_cross_links (resolved in the plan step).
    `partitions`: the number of node partitions the links are grouped in."""

    def __init__(self, options: SplitOptions, layout: str, staging: str, partitions: int):
        super().__init__()
        self._options, self._layout, self._staging, self._partitions = options, layout, staging, partitions

    def expand(self, flow: StageOutput) -> StageOutput:
        options = self._options
        keep_labels = keeps_labels_whole(self._layout, options.by)
        stratified = self._layout == "labeled" and options.by == "document"
        parked_outputs = (flow.main | "Park" >> beam.ParDo(_ParkFn(self._staging, keep_labels, stratified,
                                                                    self._partitions)).with_output_types(Output))
        parked = parked_outputs | "SplitPark" >> SplitOutputs((MAIN, LINKS))
        documents = parked_outputs | "SelectDocuments" >> beam.Filter(_is, DOCUMENTS)
        crossing = (parked[LINKS]
                    | "GroupLinks" >> beam.GroupByKey()
                    | "CrossLinks" >> beam.FlatMap(_cross_links_step).with_output_types(Output))
        gathered = (documents, crossing) | "GatherPlan" >> beam.Flatten()
        planned = (flow.main.pipeline
                   | "StartPlan" >> beam.Create([None])
                   | "Plan" >> beam.FlatMap(_plan_step, beam.pvalue.AsList(gathered), options, self._staging)
                   .with_output_types(Output)
                   | "SplitPlan" >> SplitOutputs((MAIN, COUNTS)))
        labelled = ({_PARKED: parked[MAIN], _SPLITS: planned[MAIN]}
                    | "JoinSplits" >> beam.CoGroupByKey()
                    | "LabelSplits" >> beam.ParDo(_LabelSplitsFn(options.names)).with_output_types(Output)
                    | "SplitLabels" >> SplitOutputs((MAIN,), BUCKET_TABLE))
        return flow.advance(labelled[MAIN], None, planned[COUNTS])


def _array(column) -> pa.Array:
    """A column as one Array (combine_chunks copies even a single chunk: that one is taken as it is)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _numpy(table: pa.Table, name: str) -> np.ndarray:
    """A uint64 column with no nulls -> one numpy array (zero-copy when it has one chunk)."""
    chunks = table.column(name).chunks
    return chunks[0].to_numpy() if len(chunks) == 1 else np.concatenate([_EMPTY, *(c.to_numpy() for c in chunks)])
