"""Near-duplicate stage (--near-duplicates): each write bucket's finished documents -> the same documents,
those of a near-duplicate cluster marked with `duplicate_group` (the id kept for the cluster), and with
--drop-near-duplicates only the kept one of each cluster left; every clustered document listed as a
duplicate record.

    (bucket, table) -> park the table in the staging folder; its content pieces (a document's own text,
                       image or point cloud, or each chunk's) -> signatures and band keys -> band rows and
                       signatures, gathered per kind over a worker's buckets into band files in the staging
                       folder
    band files      -> grouped by (kind, band key partition): pairs of documents that share a band key,
                       verified on their signatures (transforms/duplicates/candidates.py) -> edges
    edges           -> ConnectedComponents: a cluster's id is its smallest document key, so the kept
                       document is the cluster's smallest id
    (bucket, path) + that bucket's cluster members -> the parked table, marked (and thinned)

A document's key (its id's 16 hex digits) names it here; its write bucket is that key modulo the number of
buckets (the group stage cut them so), so a cluster member's answer goes straight to its bucket.

Band rows go through the staging folder, as the group stage's candidates do: only (partition, path) pairs
cross the shuffle (on the DirectRunner, 200 MB of band rows in shuffled elements cost as much as all the
signatures: Beam's data channel copies them a dozen times). A band file holds a record batch per partition
and bucket, a row per piece with the piece's keys of that partition; a file gathers many buckets, so the
pairs step opens a few files, not one per bucket. Each piece's signature is written once, beside the band
file, in batches of SIGNATURE_ROWS pieces, and the pairs step reads only the batches of pieces that share a
key with another: most pieces share none, so most signatures are never read. A text's
MinHash signature is kept as one byte per permutation (the low byte: equal entries stay equal, unequal
ones collide 1 time in 256, which raises an estimated similarity by at most 0.4 points). Tables and band files
are parked as the split stage parks its files (transforms/split/parking.py): on a local disk they are
memory-mapped when read, so reading one copies nothing into fresh memory.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import math
import uuid
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.options import DuplicateOptions
from transforms.coders import BUCKET_TABLE, batch_bytes, bytes_batch
from transforms.document_keys import hex_ids
from transforms.duplicates.candidates import shared_keys, similar_pairs
from transforms.duplicates.cloud_signatures import CLOUD_MATCH, cloud_band_keys, cloud_signatures, cloud_similarity
from transforms.duplicates.records import NEAR, compact, duplicate_records
from transforms.duplicates.text_signatures import minhash_keys, text_similarity
from transforms.split.components import ConnectedComponents
from transforms.split.nodes import document_nodes
from transforms.stage import COUNTS, DUPLICATES, MAIN, Output, SplitOutputs, StageOutput, count
from transforms.split.parking import park, park_parts, unpark, unpark_parts
from transforms.storage import join_url

STAGE = "near_duplicates"
BANDS, EDGES, BEST = "bands", "edges", "best"
_PARKED = "parked"
_FOLDER = "near_duplicates"  # in the staging folder: parked tables and band files
BAND_FILE_BYTES = 64 << 20  # a band file holds about this much of a worker's band rows and signatures
SIGNATURE_ROWS = 4096  # pieces per record batch of signatures: a pairs step reads the batches it needs
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


def piece_signatures(kind: str, nodes: np.ndarray, contents, options: DuplicateOptions) -> tuple:
    """One kind's pieces -> (nodes (k,) uint64, band keys (k, bands) uint64, signatures (k, width) uint8) of
    those that have a signature: a text's MinHash (the low byte of each entry), an image's hash (8 bytes,
    little-endian; an image Pillow cannot decode has none), a cloud's descriptor (float32 bytes)."""
    if kind == TEXT:
        return (nodes, *minhash_keys(contents))
    if kind == IMAGE:
        from transforms.duplicates.image_signatures import image_band_keys, image_hashes  # Pillow: images only

        hashes, decoded = image_hashes(contents.to_pylist())
        hashes = hashes[decoded]
        return (nodes[decoded], image_band_keys(hashes, options.image_distance),
                hashes.astype("<u8").view(np.uint8).reshape(-1, 8))
    clouds = [np.asarray(cloud, dtype=np.float32).reshape(-1, 3) for cloud in contents.to_pylist()]
    signatures = cloud_signatures(clouds)
    return nodes, cloud_band_keys(signatures), np.ascontiguousarray(signatures, dtype="<f4").view(np.uint8)


def band_rows(nodes: np.ndarray, keys: np.ndarray, partitions: int) -> Iterator[tuple]:
    """Pieces (nodes (k,) uint64, band keys (k, bands) uint64) -> (partition, batch) for each band-key
    partition (key % partitions) that holds keys: a row per piece with keys there, `node` uint64, `piece`
    int32 (its row among the bucket's pieces, where its signature is: signature_batches) and `keys`
    list<uint64> (its keys in the partition)."""
    partition = keys % np.uint64(partitions)
    for part in np.unique(partition):
        mine = partition == part
        held = np.count_nonzero(mine, axis=1)
        rows = np.flatnonzero(held)
        yield int(part), pa.RecordBatch.from_pydict({
            "node": nodes[rows],
            "piece": rows.astype(np.int32),
            "keys": pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(held[rows])].astype(np.int32)),
                                             pa.array(keys[mine]))})  # row by row: each piece's keys in order


def signature_batches(signatures: np.ndarray) -> list[pa.RecordBatch]:
    """A bucket's (k, width) uint8 signatures -> record batches of SIGNATURE_ROWS pieces each (the last one
    shorter), one fixed-size binary column `signature`: chunk c holds pieces c * SIGNATURE_ROWS onwards."""
    width = signatures.shape[1]
    batches = []
    for low in range(0, len(signatures), SIGNATURE_ROWS):
        data = np.ascontiguousarray(signatures[low:low + SIGNATURE_ROWS]).reshape(-1)
        column = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(data) // width, [None, pa.py_buffer(data)])
        batches.append(pa.RecordBatch.from_arrays([column], ["signature"]))
    return batches


def verified_pairs(kind: str, rows: pa.Table, signatures_of, options: DuplicateOptions) -> tuple:
    """read_bands rows of one kind and partition, and signatures_of(row indices) -> (r, width) uint8 those
    rows' signatures -> (a, b, similarity): pairs of documents that share a band key and are near duplicates
    by their signatures (similarity in [0, 1]; images: 1 - differing bits / 64). Only the signatures of
    pieces that share a key with another are asked for."""
    nodes = rows.column("node").to_numpy()
    lists = rows.column("keys").combine_chunks()
    keys = lists.flatten().to_numpy()
    owners = np.repeat(np.arange(len(lists)), np.asarray(pc.list_value_length(lists)))
    shared = shared_keys(keys)
    pieces = np.unique(owners[shared])
    if not pieces.size:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.float64)
    keys, owners = keys[shared], np.searchsorted(pieces, owners[shared])
    nodes, signatures = nodes[pieces], signatures_of(pieces)
    if kind == TEXT:
        return similar_pairs(keys, nodes, signatures, text_similarity, options.text_threshold, owners=owners)
    if kind == IMAGE:
        from transforms.duplicates.image_signatures import hamming  # Pillow: images only

        hashes = signatures.copy().view("<u8").reshape(-1).astype(np.uint64)
        a, b, distance = similar_pairs(keys, nodes, hashes, hamming, options.image_distance, larger_is_closer=False,
                                       owners=owners)
        return a, b, 1 - np.asarray(distance, dtype=np.float64) / 64
    return similar_pairs(keys, nodes, signatures.copy().view("<f4"), cloud_similarity, CLOUD_MATCH, owners=owners)


class BandFile:
    """Band rows of one kind gathered from the buckets of a bundle for two files in the staging folder: the
    band rows, {partition: [(bucket, band_rows batch)]}, at `path`, and each bucket's signature_batches at
    signatures_path(path); their size. Each file lists its record batches' names in its schema metadata
    ("partition:bucket" and "bucket:chunk"), so that a reader takes only the batches it needs."""

    def __init__(self, staging: str, kind: str):
        self.path = join_url(staging, _FOLDER, f"{kind}-{uuid.uuid4().hex}.arrow")
        self.parts: dict[int, list] = {}
        self.signatures: list = []
        self.nbytes = 0

    def add(self, partition: int, bucket: int, batch: pa.RecordBatch) -> bool:
        """Gather a bucket's batch of a partition; True when it is the partition's first in the file."""
        first = partition not in self.parts
        self.parts.setdefault(partition, []).append((bucket, batch))
        self.nbytes += batch.nbytes
        return first

    def add_signatures(self, bucket: int, signatures: np.ndarray) -> None:
        """Gather a bucket's (k, width) uint8 signatures, in the order of its band rows' `piece`."""
        for chunk, batch in enumerate(signature_batches(signatures)):
            self.signatures.append((f"{bucket}:{chunk}", batch))
            self.nbytes += batch.nbytes

    def write(self) -> None:
        park_parts([(f"{partition}:{bucket}", batch) for partition in sorted(self.parts)
                    for bucket, batch in self.parts[partition]], self.path)
        park_parts(self.signatures, signatures_path(self.path))


def signatures_path(path: str) -> str:
    """A band file's path -> the path of its signatures' file."""
    return path[:-len(".arrow")] + ".signatures.arrow"


def read_bands(urls: list, partition: int) -> pa.Table:
    """A partition's band rows in BandFiles (only its record batches are read), bucket after bucket (the same
    rows in the same order however the buckets were gathered into files), with `file` (the index of its
    file in urls) and `bucket` int32 columns added to find each piece's signature (read_signatures)."""
    found = []
    for number, url in enumerate(urls):
        for name, batch in unpark_parts(url, lambda name: name.split(":")[0] == str(partition)):
            bucket = int(name.split(":")[1])
            found.append((bucket, batch.append_column("file", pa.array(np.full(batch.num_rows, number, np.int32)))
                          .append_column("bucket", pa.array(np.full(batch.num_rows, bucket, np.int32)))))
    return pa.Table.from_batches([batch for _, batch in sorted(found, key=lambda item: item[0])])


def read_signatures(urls: list, rows: pa.Table, wanted: np.ndarray) -> np.ndarray:
    """read_bands rows and indices of some of them -> (len(wanted), width) uint8 their pieces' signatures,
    from the signature files of urls; only the record batches that hold them are read."""
    files, buckets, pieces = (rows.column(name).to_numpy()[wanted] for name in ("file", "bucket", "piece"))
    chunks = pieces // SIGNATURE_ROWS
    out = None
    for number in np.unique(files):
        mine = files == number
        names = {f"{bucket}:{chunk}" for bucket, chunk in zip(buckets[mine].tolist(), chunks[mine].tolist())}
        for name, batch in unpark_parts(signatures_path(urls[number]), names.__contains__):
            column = batch.column(0)
            width = column.type.byte_width
            data = np.frombuffer(column.buffers()[1], dtype=np.uint8, count=len(column) * width,
                                 offset=column.offset * width).reshape(-1, width)
            if out is None:
                out = np.zeros((wanted.size, width), dtype=np.uint8)
            bucket, chunk = map(int, name.split(":"))
            here = np.flatnonzero(mine & (buckets == bucket) & (chunks == chunk))
            out[here] = data[pieces[here] - chunk * SIGNATURE_ROWS]
    return out


class _ParkFn(beam.DoFn):
    """(bucket, table) -> Output(MAIN, (bucket, parked path)), Output(BANDS, ("kind:partition", band file
    path)) for each kind and band-key partition the first time a band file gets its rows, Output(COUNTS,
    near_duplicate_pieces). Band rows of a kind are gathered over the bundle's buckets into a BandFile of
    about `file_bytes` (so files grow with the data, not with buckets x partitions: the pairs step opens
    each of them); only paths cross the shuffle.

    Every path is emitted from process (some runners, Beam 2.77's DaskRunner, drop what finish_bundle
    emits); finish_bundle only writes the last files, whose paths are already out."""

    def __init__(self, staging: str, options: DuplicateOptions, partitions: int, file_bytes: int = BAND_FILE_BYTES):
        self._staging, self._options, self._partitions, self._file_bytes = staging, options, partitions, file_bytes
        self._files: dict[str, BandFile] = {}

    def start_bundle(self) -> None:
        self._files = {}

    def process(self, element) -> Iterator[Output]:
        bucket, table = element
        path = join_url(self._staging, _FOLDER, f"b{bucket:05d}.arrow")
        park(table, path)
        yield Output(MAIN, (bucket, path))
        pieces = 0
        for kind, (nodes, contents) in content_pieces(table).items():
            pieces += len(nodes)
            if kind not in self._files:
                self._files[kind] = BandFile(self._staging, kind)
            band = self._files[kind]
            signed, keys, signatures = piece_signatures(kind, nodes, contents, self._options)
            for partition, batch in band_rows(signed, keys, self._partitions):
                if band.add(partition, bucket, batch):
                    yield Output(BANDS, (f"{kind}:{partition}", band.path))
            band.add_signatures(bucket, signatures)
            if band.nbytes >= self._file_bytes:
                self._files.pop(kind).write()
        yield Output(COUNTS, count(STAGE, near_duplicate_pieces=pieces))

    def finish_bundle(self) -> None:
        for band in self._files.values():
            if band.parts:
                band.write()
        self._files = {}


def _pairs_step(element, options: DuplicateOptions, buckets: int) -> Iterator[Output]:
    """("kind:partition", [band file paths]) -> Output(EDGES, (k, 2) uint64 edges) and Output(BEST, (bucket,
    (node, similarity) rows as bytes)) for both ends of every verified pair."""
    kind_partition, paths = element
    kind, partition = kind_partition.split(":")
    urls = sorted(set(paths))
    rows = read_bands(urls, int(partition))
    a, b, similarity = verified_pairs(kind, rows, lambda wanted: read_signatures(urls, rows, wanted), options)
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
        table = unpark(path)
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
        yield Output(DUPLICATES, (bucket, batch_bytes(compact(records))))
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


def component_partitions(buckets: int) -> int:
    """The partitions of the clusters' graph for a run of `buckets` write buckets: ceil(sqrt(buckets)). Its
    edges are far fewer than the documents (about one per near duplicate), and each step of
    ConnectedComponents sends up to partitions^2 elements: with a partition per bucket, a run of 10,000
    photos (77 buckets, 2,000 edges) took about 4 s more CPU than with 9."""
    return math.ceil(math.sqrt(buckets))


class NearDuplicates(beam.PTransform):
    """Stage: main = (bucket, documents Table) pairs -> main = the same, near duplicates marked (and thinned
    with drop); duplicates += their records. Counts: near_duplicate_pieces, near_duplicates_found,
    near_duplicate_clusters, near_duplicates_removed, and the component counts."""

    def __init__(self, options: DuplicateOptions, staging: str, buckets: int, rounds: int = 2):
        super().__init__()
        self._options, self._staging, self._buckets, self._rounds = options, staging, buckets, rounds

    def expand(self, flow: StageOutput) -> StageOutput:
        buckets = self._buckets
        # Steps that yield Outputs say so: Beam then sizes their elements with OutputCoder, without pickling
        # each bucket's documents (a string annotation under `from __future__ import annotations` says nothing).
        parked = (flow.main
                  | "Park" >> beam.ParDo(_ParkFn(self._staging, self._options, buckets)).with_output_types(Output)
                  | "SplitPark" >> SplitOutputs((MAIN, BANDS, COUNTS)))
        pairs = (parked[BANDS]
                 | "GroupBands" >> beam.GroupByKey()
                 | "Pairs" >> beam.FlatMap(_pairs_step, self._options, buckets).with_output_types(Output)
                 | "SplitPairs" >> SplitOutputs((EDGES, BEST)))
        graph = ConnectedComponents(component_partitions(buckets), self._rounds)
        clusters = StageOutput.start(pairs[EDGES]) | "Clusters" >> graph
        components = clusters.main | "ClustersToBuckets" >> beam.FlatMap(_components_to_buckets, buckets)
        marked = ({_PARKED: parked[MAIN], "components": components, "similarity": pairs[BEST]}
                  | "JoinClusters" >> beam.CoGroupByKey()
                  | "Mark" >> beam.ParDo(_MarkFn(self._options.drop)).with_output_types(Output)
                  | "SplitMark" >> SplitOutputs((MAIN, DUPLICATES, COUNTS), BUCKET_TABLE))
        return flow._replace(main=marked[MAIN], counts=flow.counts + (parked[COUNTS], marked[COUNTS]) + clusters.counts,
                             duplicates=flow.duplicates + (marked[DUPLICATES],))


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _concat(arrays: list) -> pa.Array:
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
