"""Near-duplicate stage (--near-duplicates): each write bucket's finished documents -> the same documents,
those of a near-duplicate cluster marked with `duplicate_group` (the id kept for the cluster), and with
--drop-near-duplicates only the kept one of each cluster left; every clustered document listed as a
duplicate record.

    (bucket, table) -> park the table in the staging folder; its content pieces (a document's own text,
                       image or point cloud, or each chunk's) -> signatures and band keys
    band rows       -> grouped by (kind, band key partition): pairs of documents that share a band key,
                       verified on their signatures (transforms/duplicates/candidates.py) -> edges
    edges           -> ConnectedComponents: a cluster's id is its smallest document key, so the kept
                       document is the cluster's smallest id
    (bucket, path) + that bucket's cluster members -> the parked table, marked (and thinned)

A document's key (its id's 16 hex digits) names it here; its write bucket is that key modulo the number of
buckets (the group stage cut them so), so a cluster member's answer goes straight to its bucket. Band rows
cross the shuffle as Arrow record batches in bytes; a text's MinHash signature travels as one byte per
permutation (the low byte: equal entries stay equal, unequal ones collide 1 time in 256, which raises an
estimated similarity by at most 0.4 points).
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.options import DuplicateOptions
from transforms.coders import batch_bytes, bytes_batch
from transforms.document_keys import hex_ids
from transforms.duplicates.candidates import similar_pairs
from transforms.duplicates.cloud_signatures import CLOUD_MATCH, cloud_band_keys, cloud_signatures, cloud_similarity
from transforms.duplicates.image_signatures import hamming, image_band_keys, image_hashes
from transforms.duplicates.records import NEAR, duplicate_records
from transforms.duplicates.text_signatures import minhash_signatures, text_band_keys, text_similarity
from transforms.split.components import ConnectedComponents
from transforms.split.nodes import document_nodes
from transforms.stage import COUNTS, DUPLICATES, MAIN, Output, SplitOutputs, StageOutput, count
from transforms.storage import join_url, read_arrow, write_arrow

STAGE = "near_duplicates"
BANDS, EDGES, BEST = "bands", "edges", "best"
_PARKED = "parked"
TEXT, IMAGE, MESH = "text", "image", "mesh"


def content_pieces(table: pa.Table) -> dict[str, tuple[np.ndarray, list]]:
    """Documents -> {kind: (nodes (k,) uint64, contents (k,))} for every piece of content that can have near
    duplicates: a text document's or chunk's text, an image's loaded bytes, a mesh's point cloud. A
    two-chunk document gives a piece per chunk, each under the document's node."""
    nodes = document_nodes(table.column("id"))
    rows = {name: _array(table.column(name)) for name in ("modality", "text", "blob", "point_cloud")}
    pieces = [(nodes, rows)]
    chunks = _array(table.column("chunks"))
    if chunks.null_count < len(chunks):
        lengths = np.asarray(pc.fill_null(pc.list_value_length(chunks), 0))
        values = pc.list_flatten(chunks)
        pieces.append((np.repeat(nodes, lengths), {name: values.field(name) for name in rows}))
    found: dict[str, list] = {TEXT: [], IMAGE: [], MESH: []}
    for owners, columns in pieces:
        modality = columns["modality"]
        for kind, column in ((TEXT, "text"), (IMAGE, "blob"), (MESH, "point_cloud")):
            mine = np.asarray(pc.and_(pc.fill_null(pc.equal(modality, kind), False), columns[column].is_valid()))
            if mine.any():
                found[kind].append((owners[mine], columns[column].filter(pa.array(mine))))
    return {kind: (np.concatenate([n for n, _ in parts]), _concat([c for _, c in parts]))
            for kind, parts in found.items() if parts}


def band_rows(kind: str, nodes: np.ndarray, contents, options: DuplicateOptions) -> pa.RecordBatch:
    """One kind's pieces -> a batch of band rows: `key` (uint64 band key), `node` (uint64 document key),
    `signature` (fixed-size binary), one row per band of each piece."""
    if kind == TEXT:
        signatures = minhash_signatures(contents)
        keys = text_band_keys(signatures)
        signatures = (signatures & 0xFF).astype(np.uint8)
    elif kind == IMAGE:
        hashes, decoded = image_hashes(contents.to_pylist())
        nodes, hashes = nodes[decoded], hashes[decoded]
        keys = image_band_keys(hashes, options.image_distance)
        signatures = hashes.astype("<u8").view(np.uint8).reshape(-1, 8)
    else:
        clouds = [np.asarray(cloud, dtype=np.float32).reshape(-1, 3) for cloud in contents.to_pylist()]
        signatures = cloud_signatures(clouds)
        keys = cloud_band_keys(signatures)
        signatures = np.ascontiguousarray(signatures, dtype="<f4").view(np.uint8)
    bands = keys.shape[1]
    width = signatures.shape[1]
    flat = np.ascontiguousarray(np.repeat(signatures, bands, axis=0)).reshape(-1)
    return pa.RecordBatch.from_pydict({
        "key": keys.reshape(-1).astype(np.uint64), "node": np.repeat(nodes, bands),
        "signature": pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(flat) // width,
                                                          [None, pa.py_buffer(flat.tobytes())])})


def verified_pairs(kind: str, rows: pa.Table, options: DuplicateOptions) -> tuple:
    """Band rows of one kind -> (a, b, similarity): pairs of documents that share a band key and are near
    duplicates by their signatures (similarity in [0, 1]; images: 1 - differing bits / 64)."""
    keys, nodes = rows.column("key").to_numpy(), rows.column("node").to_numpy()
    raw = rows.column("signature").combine_chunks()
    width = raw.type.byte_width
    data = np.frombuffer(raw.buffers()[1], dtype=np.uint8, count=len(raw) * width, offset=raw.offset * width)
    signatures = data.reshape(-1, width)
    if kind == TEXT:
        return similar_pairs(keys, nodes, signatures, text_similarity, options.text_threshold)
    if kind == IMAGE:
        hashes = signatures.copy().view("<u8").reshape(-1).astype(np.uint64)
        a, b, distance = similar_pairs(keys, nodes, hashes, hamming, options.image_distance, larger_is_closer=False)
        return a, b, 1 - np.asarray(distance, dtype=np.float64) / 64
    return similar_pairs(keys, nodes, signatures.copy().view("<f4"), cloud_similarity, CLOUD_MATCH)


class _ParkFn(beam.DoFn):
    """(bucket, table) -> Output(MAIN, (bucket, parked path)), Output(BANDS, ((kind, partition), band rows as
    bytes)) per kind and band-key partition, Output(COUNTS, near_duplicate_pieces)."""

    def __init__(self, staging: str, options: DuplicateOptions, partitions: int):
        self._staging, self._options, self._partitions = staging, options, partitions

    def process(self, element) -> Iterator[Output]:
        bucket, table = element
        path = join_url(self._staging, "near_duplicates", f"b{bucket:05d}.arrow")
        write_arrow(table, path)
        yield Output(MAIN, (bucket, path))
        pieces = 0
        for kind, (nodes, contents) in content_pieces(table).items():
            rows = band_rows(kind, nodes, contents, self._options)
            pieces += len(nodes)
            partition = rows.column("key").to_numpy() % np.uint64(self._partitions)
            for p in np.unique(partition):
                yield Output(BANDS, (f"{kind}:{p}", batch_bytes(rows.filter(pa.array(partition == p)))))
        yield Output(COUNTS, count(STAGE, near_duplicate_pieces=pieces))


def _pairs_step(element, options: DuplicateOptions, buckets: int) -> Iterator[Output]:
    """("kind:partition", [band rows as bytes]) -> Output(EDGES, (k, 2) uint64 edges) and Output(BEST,
    (bucket, (node, similarity) rows as bytes)) for both ends of every verified pair."""
    kind_partition, batches = element
    rows = pa.Table.from_batches([bytes_batch(data) for data in batches])
    a, b, similarity = verified_pairs(kind_partition.split(":")[0], rows, options)
    if not len(a):
        return
    yield Output(EDGES, np.column_stack([a, b]).astype(np.uint64))
    yield from _to_buckets(np.concatenate([a, b]), np.concatenate([similarity, similarity]).astype(np.float64),
                           "similarity", buckets)


def _components_to_buckets(pair: tuple, buckets: int) -> Iterator[tuple]:
    """(nodes, components) -> (bucket, (node, component) rows as bytes) per bucket of the nodes."""
    nodes, components = pair
    for bucket, batch in _by_bucket(nodes, components, "component", buckets):
        yield bucket, batch


def _to_buckets(nodes: np.ndarray, values: np.ndarray, name: str, buckets: int) -> Iterator[Output]:
    for bucket, batch in _by_bucket(nodes, values, name, buckets):
        yield Output(BEST, (bucket, batch))


def _by_bucket(nodes: np.ndarray, values: np.ndarray, name: str, buckets: int) -> Iterator[tuple]:
    bucket_of = nodes % np.uint64(buckets)
    for bucket in np.unique(bucket_of):
        mine = bucket_of == bucket
        yield int(bucket), batch_bytes(pa.RecordBatch.from_pydict({"node": nodes[mine], name: values[mine]}))


class _MarkFn(beam.DoFn):
    """(bucket, {parked: [path], components: [...], similarity: [...]}) -> Output(MAIN, (bucket, documents
    with duplicate_group, thinned with drop)), Output(DUPLICATES, records of the clustered documents),
    Output(COUNTS, near_duplicates_found / _removed, near_duplicate_clusters)."""

    def __init__(self, drop: bool):
        self._drop = drop

    def process(self, element) -> Iterator[Output]:
        bucket, joined = element
        (path,) = joined[_PARKED]
        table = read_arrow(path)
        component, similarity = _lookup(joined["components"], "component"), _lookup(joined["similarity"], "similarity")
        if component is None:
            yield Output(MAIN, (bucket, table))
            return
        nodes = document_nodes(table.column("id"))
        clustered = np.isin(nodes, component[0])
        rows = np.flatnonzero(clustered)
        group = component[1][np.searchsorted(component[0], nodes[rows])]
        best = similarity[1][np.searchsorted(similarity[0], nodes[rows])] if similarity is not None else np.ones(rows.size)
        ids = table.column("id").combine_chunks().take(pa.array(rows))
        kept = (nodes[rows] == group) & np.asarray(pc.invert(pc.match_substring(ids, "-")))
        removed = ~kept if self._drop else np.zeros(rows.size, dtype=bool)
        kept_ids = hex_ids(group)
        marks = np.full(table.num_rows, None, dtype=object)
        marks[rows] = kept_ids.to_pylist()
        index = table.schema.get_field_index("duplicate_group")
        table = table.set_column(index, table.schema.field(index), pa.array(marks, type=pa.string()))
        records = duplicate_records(table, rows, kept_ids, NEAR, best, removed, ids)
        if removed.any():
            keep = np.ones(table.num_rows, dtype=bool)
            keep[rows[removed]] = False
            table = table.filter(pa.array(keep))
        yield Output(MAIN, (bucket, table))
        yield Output(DUPLICATES, records)
        yield Output(COUNTS, count(STAGE, near_duplicates_found=int(rows.size), near_duplicate_clusters=int(kept.sum()),
                                   near_duplicates_removed=int(removed.sum())))


def _lookup(batches: list, name: str):
    """(node, value) rows as bytes -> (nodes ascending, each one's value: the largest given), or None."""
    if not batches:
        return None
    table = pa.Table.from_batches([bytes_batch(data) for data in batches])
    nodes, values = table.column("node").to_numpy(), table.column(name).to_numpy()
    order = np.lexsort((-values if values.dtype.kind == "f" else values, nodes))
    nodes, values = nodes[order], values[order]
    first = np.r_[True, nodes[1:] != nodes[:-1]]
    return nodes[first], values[first]


class NearDuplicates(beam.PTransform):
    """Stage: main = (bucket, documents Table) pairs -> main = the same, near duplicates marked (and thinned
    with drop); duplicates += their records. Counts: near_duplicate_pieces, near_duplicates_found,
    near_duplicate_clusters, near_duplicates_removed, and the component counts."""

    def __init__(self, options: DuplicateOptions, staging: str, buckets: int, rounds: int = 2):
        super().__init__()
        self._options, self._staging, self._buckets, self._rounds = options, staging, buckets, rounds

    def expand(self, flow: StageOutput) -> StageOutput:
        buckets = self._buckets
        parked = (flow.main
                  | "Park" >> beam.ParDo(_ParkFn(self._staging, self._options, buckets))
                  | "SplitPark" >> SplitOutputs((MAIN, BANDS, COUNTS)))
        pairs = (parked[BANDS]
                 | "GroupBands" >> beam.GroupByKey()
                 | "Pairs" >> beam.FlatMap(_pairs_step, self._options, buckets).with_output_types(Output)
                 | "SplitPairs" >> SplitOutputs((EDGES, BEST)))
        clusters = StageOutput.start(pairs[EDGES]) | "Clusters" >> ConnectedComponents(buckets, self._rounds)
        components = clusters.main | "ClustersToBuckets" >> beam.FlatMap(_components_to_buckets, buckets)
        marked = ({_PARKED: parked[MAIN], "components": components, "similarity": pairs[BEST]}
                  | "JoinClusters" >> beam.CoGroupByKey()
                  | "Mark" >> beam.ParDo(_MarkFn(self._options.drop))
                  | "SplitMark" >> SplitOutputs((MAIN, DUPLICATES, COUNTS)))
        return flow._replace(main=marked[MAIN], counts=flow.counts + (parked[COUNTS], marked[COUNTS]) + clusters.counts,
                             duplicates=flow.duplicates + (marked[DUPLICATES],))


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _concat(arrays: list) -> pa.Array:
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
