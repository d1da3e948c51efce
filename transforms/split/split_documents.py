"""Split stage: each write bucket's finished documents -> the same documents with their `split`, chosen so
that no group straddles two splits (a group: documents joined by shared content or, where the split
keeps labels whole, a shared label; transforms/split/nodes.py).

    (bucket, table) -> park the table in the staging folder; its edges and per-document keys go on
    edges       -> ConnectedComponents (transforms/split/components.py): each node's component
    keys        -> joined with the components, partition by partition: each document's group
    groups      -> one plan step: every group's split (transforms/split/assign.py), per-split counts and the
                   largest groups (written to the staging folder for the manifest), sent back per bucket
    (bucket, path) + (bucket, splits) -> the parked table with its `split` column, for the write stage

The plan step is the only place where data meets in one worker: 56 bytes per document (its bucket, key,
primary node, group, stratum, label and row hashes), never the documents or the graph. Joins, not side inputs, carry data between
branches that share upstream steps (Beam 2.77's DaskRunner computes such side inputs wrongly).
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import json
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.options import SplitOptions
from transforms.coders import batch_bytes, bytes_batch
from transforms.hashing import column_hashes, combined_hashes
from transforms.split.assign import large_groups, plan_splits
from transforms.split.components import ConnectedComponents, component_of
from transforms.split.nodes import document_graph, document_nodes, keeps_labels_whole
from transforms.split.report import REPORT
from transforms.stage import COUNTS, MAIN, Output, SplitOutputs, StageOutput, count
from transforms.storage import join_url, read_arrow, write_arrow, write_bytes

STAGE = "split"
EDGES, KEYS = "edges", "keys"
_PARKED, _SPLITS = "parked", "splits"


def document_keys_batch(bucket: int, table: pa.Table, primary: np.ndarray, stratified: bool) -> pa.RecordBatch:
    """A bucket's documents and their primary nodes -> one row per document: bucket, key (from its id),
    primary node, stratum (its label's hash when stratified, else 0), label hash (0 without a label) and
    row hash (source file and row)."""
    n = table.num_rows
    labels = table.column("label").combine_chunks()
    label_hash = np.where(np.asarray(labels.is_valid()), column_hashes(labels), np.uint64(0))
    rows = combined_hashes([column_hashes(table.column("source_file").combine_chunks()),
                            column_hashes(table.column("source_row").combine_chunks())])
    return pa.RecordBatch.from_pydict({
        "bucket": np.full(n, bucket, dtype=np.int64), "key": document_nodes(table.column("id")), "primary": primary,
        "stratum": label_hash if stratified else np.zeros(n, np.uint64), "label": label_hash, "row": rows})


class _ParkFn(beam.DoFn):
    """(bucket, table) -> Output(MAIN, (bucket, parked path)), Output(EDGES, (n, 2) uint64 edges),
    Output(KEYS, (partition, document keys batch as bytes)) per graph partition of the primary nodes."""

    def __init__(self, staging: str, keep_labels: bool, stratified: bool, partitions: int):
        self._staging, self._keep_labels, self._stratified, self._partitions = staging, keep_labels, stratified, partitions

    def process(self, element) -> Iterator[Output]:
        bucket, table = element
        path = join_url(self._staging, "split", f"b{bucket:05d}.arrow")
        write_arrow(table, path)
        yield Output(MAIN, (bucket, path))
        primary, u, v = document_graph(table, self._keep_labels)
        if u.size:
            yield Output(EDGES, np.column_stack([u, v]))
        keys = document_keys_batch(bucket, table, primary, self._stratified)
        partition = primary % np.uint64(self._partitions)
        for p in np.unique(partition):
            yield Output(KEYS, (int(p), batch_bytes(keys.filter(pa.array(partition == p)))))


def _by_partition(pair: tuple, partitions: int) -> Iterator[tuple]:
    """(nodes, components) -> (partition, (node, component) pairs as bytes) for each partition (node %
    partitions) present: bytes cross a shuffle in one piece (transforms/coders.py says why)."""
    nodes, components = pair
    partition = nodes % np.uint64(partitions)
    for p in np.unique(partition):
        mine = partition == p
        yield int(p), np.column_stack([nodes[mine], components[mine]]).astype("<u8").tobytes()


def _group_of_documents(element) -> Iterator[bytes]:
    """(partition, {keys: [batches as bytes], components: [(node, component) pairs as bytes]}) -> the keys
    batches with a `group` column (the component of each document's primary node, or the node itself when
    no edge has it), as bytes."""
    _, joined = element
    pairs = np.frombuffer(b"".join(joined["components"]), dtype="<u8").reshape(-1, 2).astype(np.uint64)
    nodes, components = pairs[:, 0], pairs[:, 1]
    order = np.argsort(nodes)
    nodes, components = nodes[order], components[order]
    for data in joined["keys"]:
        keys = bytes_batch(data)
        group = component_of(keys.column("primary").to_numpy(), nodes, components)
        yield batch_bytes(keys.append_column("group", pa.array(group, type=pa.uint64())))


def _plan_step(_, keyed: list, options: SplitOptions, staging: str) -> Iterator[Output]:
    """Every document's keys batch (with groups) -> Output(MAIN, (bucket, (key, split) batch as bytes)) per
    bucket; Output(COUNTS, per split: documents, groups, labels, rows); the report file in the staging."""
    documents = pa.Table.from_batches([bytes_batch(data) for data in keyed]) if keyed else None
    if documents is None or documents.num_rows == 0:
        write_bytes(json.dumps({"largest_groups": []}).encode(), join_url(staging, REPORT))
        return
    group = documents.column("group").to_numpy()
    groups, index = np.unique(group, return_inverse=True)
    sizes = np.bincount(index, minlength=len(groups))
    strata = np.full(len(groups), np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(strata, index, documents.column("stratum").to_numpy())
    plan = plan_splits(groups, sizes, strata, tuple(f for _, f in options.fractions), options.seed)
    split = plan.split_of(group)
    names = options.names
    numbers = {}
    for i, name in enumerate(names):
        mine = split == i
        labels = documents.column("label").to_numpy()[mine]
        numbers.update({f"split.{name}.documents": int(mine.sum()),
                        f"split.{name}.groups": int((plan.splits == i).sum()),
                        f"split.{name}.labels": int(np.unique(labels[labels != 0]).size),
                        f"split.{name}.rows": int(np.unique(documents.column("row").to_numpy()[mine]).size)})
    yield Output(COUNTS, count(STAGE, **numbers))
    write_bytes(json.dumps({"largest_groups": large_groups(plan, names)}).encode(), join_url(staging, REPORT))
    buckets = documents.column("bucket").to_numpy()
    for bucket in np.unique(buckets):
        mine = buckets == bucket
        answer = pa.RecordBatch.from_pydict({"key": documents.column("key").to_numpy()[mine],
                                             "split": split[mine].astype(np.int8)})
        yield Output(MAIN, (int(bucket), batch_bytes(answer)))


class _LabelSplitsFn(beam.DoFn):
    """(bucket, {parked: [path], splits: [(key, split) batches as bytes]}) -> Output(MAIN, (bucket, table
    with its `split` column))."""

    def __init__(self, names: tuple):
        self._names = pa.array(names, type=pa.string())

    def process(self, element) -> Iterator[Output]:
        bucket, joined = element
        (path,) = joined[_PARKED]
        table = read_arrow(path)
        answers = pa.Table.from_batches([bytes_batch(data) for data in joined[_SPLITS]])
        answered = answers.column("key").to_numpy()
        order = np.argsort(answered, kind="stable")
        keys = document_nodes(table.column("id"))
        split = answers.column("split").to_numpy()[order][np.searchsorted(answered[order], keys)]
        names = pc.take(self._names, pa.array(split.astype(np.int64)))
        index = table.schema.get_field_index("split")
        yield Output(MAIN, (bucket, table.set_column(index, table.schema.field(index), names)))


class SplitDocuments(beam.PTransform):
    """Stage: main = (bucket, documents Table) pairs -> main = the same pairs, each document's `split` set.

    Counts: split.NAME.{documents, groups, labels, rows} and the component counts."""

    def __init__(self, options: SplitOptions, layout: str, staging: str, partitions: int, rounds: int = 2):
        super().__init__()
        self._options, self._layout, self._staging = options, layout, staging
        self._partitions, self._rounds = partitions, rounds

    def expand(self, flow: StageOutput) -> StageOutput:
        options, partitions = self._options, self._partitions
        keep_labels = keeps_labels_whole(self._layout, options.by)
        stratified = self._layout == "labeled" and options.by == "document"
        parked = (flow.main
                  | "Park" >> beam.ParDo(_ParkFn(self._staging, keep_labels, stratified, partitions))
                  | "SplitPark" >> SplitOutputs((MAIN, EDGES, KEYS)))
        components = StageOutput.start(parked[EDGES]) | "Components" >> ConnectedComponents(partitions, self._rounds)
        by_partition = components.main | "ComponentsByPartition" >> beam.FlatMap(_by_partition, partitions)
        grouped = ({"keys": parked[KEYS], "components": by_partition}
                   | "JoinKeysAndComponents" >> beam.CoGroupByKey()
                   | "GroupOfDocuments" >> beam.FlatMap(_group_of_documents).with_output_types(bytes))
        planned = (flow.main.pipeline
                   | "StartPlan" >> beam.Create([None])
                   | "Plan" >> beam.FlatMap(_plan_step, beam.pvalue.AsList(grouped), options, self._staging)
                   .with_output_types(Output)
                   | "SplitPlan" >> SplitOutputs((MAIN, COUNTS)))
        labelled = ({_PARKED: parked[MAIN], _SPLITS: planned[MAIN]}
                    | "JoinSplits" >> beam.CoGroupByKey()
                    | "LabelSplits" >> beam.ParDo(_LabelSplitsFn(options.names))
                    | "SplitLabels" >> SplitOutputs((MAIN,)))
        counts = (components.counts + (planned[COUNTS],))
        return StageOutput(labelled[MAIN], flow.dead_letters, flow.counts + counts)
