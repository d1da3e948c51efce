"""Reuse stage (--incremental-from): candidate documents whose every medium is in a previous dataset take
it from there (no fetch, no decode, no sampling); all others go through LoadMedia as before, and both flow
on together, keyed by content as LoadMedia keys its documents.

The join runs on match keys (transforms/media/media_refs.py), which are small; the media themselves are read
once, from the previous dataset's shards, and never copied to the staging folder. Between steps, tables are
parked in the staging folder (transforms/split/parking.py) and Beam carries only their names:

  previous shards -> KeysOfPrevious: per shard, the keys of its loaded media and where they are, one part
      per key bucket (a bucket holds keys and positions only: a few buckets for millions of media)
  candidate batches -> ParkCandidates: documents with nothing to reuse go straight to LoadMedia; the others
      are parked, and their media references too, one part per key bucket
  (key bucket, its parts) -> JoinKeys: each reference with the places its key is found, one part per batch
  (candidate batch, its found places) -> PlaceCandidates: each document goes to the one previous shard that
      holds all its media (the first such), one part per shard; documents no shard completes go to LoadMedia
  (previous shard, its candidates) -> FillFromShard: the shard is read once, its media placed into the
      documents (documents_reused); a shard that cannot be read sends its documents to LoadMedia
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import uuid
from typing import Iterator, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.documents import RAW
from schemas.options import MediaOptions
from transforms.coders import Output
from transforms.group import split_by_bucket
from transforms.hashing import column_hashes
from transforms.media.load_media import keyed_by_content
from transforms.media.media_refs import MEDIA_FIELDS, PREVIOUS_KEY_COLUMNS, candidate_references, previous_keys, targets
from transforms.media.previous_dataset import PreviousDataset
from transforms.split.parking import park, park_parts, unpark, unpark_part
from transforms.stage import COUNTS, MAIN, StageOutput, count
from transforms.storage import filesystem, join_url

STAGE = "reuse"
PARKED = "parked"  # (key bucket, (PREVIOUS, file) or (REFERENCES, candidate batch name))
BATCHES = "batches"  # (candidate batch name, None): every parked batch, found in a bucket or not
FOUND = "found"  # (candidate batch name, (file, part)): places found for its references
PLACED = "placed"  # (previous shard, candidate batch name): documents of the batch that shard completes
REUSED = "reused"  # documents whose media were all placed
PREVIOUS, REFERENCES = "previous", "references"
REUSED_BATCH_ROWS = 256  # documents per batch the stage emits
_REFERENCE_COUNT = "_references"  # parked candidates: how many media references each document has
_SLOTS = 1 << 20  # more than the chunks of any document: (row, slot) as row * _SLOTS + slot + 1


def _parked(staging: str, folder: str, name: str) -> str:
    return join_url(staging, "reuse", folder, f"{name}.arrow")


def _bucket_parts(table: pa.Table, buckets: int) -> list[tuple[int, pa.RecordBatch]]:
    """A table with a `key` column -> (bucket, its rows) per bucket present, bucket by a hash of the key."""
    if not table.num_rows:
        return []
    batch = pa.concat_batches(table.to_batches())
    return list(split_by_bucket(batch, column_hashes(batch.column("key")), buckets))


def _parts_by(table: pa.Table, column: str) -> list[tuple[int, pa.RecordBatch]]:
    """A table -> (value, its rows without `column`) per value of the integer `column`, by value."""
    table = table.sort_by(column)
    values = table.column(column).to_numpy()
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else values
    rest = table.drop_columns([column])
    return [(int(values[s]), pa.concat_batches(rest.slice(s, e - s).to_batches()))
            for s, e in zip(starts, np.r_[starts[1:], len(values)])]


def _renumbered(keep: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions `rows` (all kept) among the rows where the (n,) bool `keep` is True."""
    return (np.cumsum(keep) - 1)[rows]


def fill_media(docs: pa.RecordBatch, found: pa.Table) -> pa.RecordBatch:
    """Candidate documents and media found for them (`row`, `slot` (-1: the document, i: chunk i) and the
    MEDIA_FIELDS) -> the documents with those media set, `_raw` cleared and keys computed from the media."""
    rows, slots = found.column("row").to_numpy(), found.column("slot").to_numpy()
    own = slots < 0
    for name in MEDIA_FIELDS:
        index = docs.schema.get_field_index(name)
        docs = docs.set_column(index, docs.schema.field(index),
                               _placed(docs.column(index), found.column(name), rows[own], np.flatnonzero(own)))
    chunks = docs.column("chunks")
    if (~own).any():
        lengths = np.asarray(pc.fill_null(pc.list_value_length(chunks), 0))
        positions = np.r_[0, np.cumsum(lengths)[:-1]][rows[~own]] + slots[~own]
        values = pc.list_flatten(chunks)
        fields = [_placed(values.field(f.name), found.column(f.name), positions, np.flatnonzero(~own))
                  if f.name in MEDIA_FIELDS else values.field(f.name) for f in values.type]
        filled = pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32)),
                                          pa.StructArray.from_arrays(fields, fields=list(values.type)),
                                          mask=chunks.is_null())
        index = docs.schema.get_field_index("chunks")
        docs = docs.set_column(index, docs.schema.field(index), filled.cast(docs.schema.field(index).type))
    index = docs.schema.get_field_index(RAW)
    docs = docs.set_column(index, docs.schema.field(index), pa.nulls(docs.num_rows, pa.string()))
    return keyed_by_content(docs)


def _placed(original: pa.Array, media: pa.ChunkedArray, positions: np.ndarray, picks: np.ndarray) -> pa.Array:
    """A column of documents or chunks with `media`'s values `picks` placed at `positions`."""
    if not len(picks):
        return original
    index = np.full(len(original), -1)
    index[positions] = picks
    placed = media.combine_chunks().take(pa.array(index, mask=index < 0)).cast(original.type)
    return pc.coalesce(placed, original)


class _KeysOfPreviousFn(beam.DoFn):
    """(shard number, a previous documents shard's URL) -> Output(PARKED, (bucket, (PREVIOUS, file))) per key
    bucket of its loaded media (key, shard, shard_row, shard_slot). A shard that cannot be read is counted
    (previous_shards_unreadable): its media are loaded again."""

    def __init__(self, previous: PreviousDataset, staging: str, buckets: int):
        self._previous, self._staging, self._buckets = previous, staging, buckets

    def process(self, element) -> Iterator[Output]:
        shard, url = element
        try:
            fs, path = filesystem(url)
            with fs.open(path, "rb") as handle:
                docs = pq.ParquetFile(handle).read(columns=PREVIOUS_KEY_COLUMNS)
        except (OSError, pa.ArrowException):
            yield Output(COUNTS, count(STAGE, previous_shards_unreadable=1))
            return
        keys = previous_keys(docs, self._previous.media_root, self._previous.excluded_sources)
        keys = pa.table({"key": keys.column("key"), "shard": pa.array(np.full(keys.num_rows, shard)),
                         "shard_row": keys.column("row"), "shard_slot": keys.column("slot")})
        parts = _bucket_parts(keys, self._buckets)
        if parts:
            path = _parked(self._staging, PREVIOUS, uuid.uuid4().hex)
            park_parts(parts, path)
            yield from (Output(PARKED, (bucket, (PREVIOUS, path))) for bucket, _ in parts)


class _ParkCandidatesFn(beam.DoFn):
    """A candidate batch -> Output(MAIN, its documents with nothing to reuse); the others parked under a new
    name: Output(BATCHES, (name, None)), Output(PARKED, (bucket, (REFERENCES, name))) per key bucket of
    their references (row, slot, key)."""

    def __init__(self, options: MediaOptions, media_root: Optional[str], staging: str, buckets: int):
        self._options, self._media_root, self._staging, self._buckets = options, media_root, staging, buckets

    def process(self, batch: pa.RecordBatch) -> Iterator[Output]:
        references, reusable = candidate_references(batch, self._options, self._media_root)
        if not reusable.all():
            yield Output(MAIN, batch.filter(pa.array(~reusable)))
        if not reusable.any():
            return
        rows = _renumbered(reusable, references.column("row").to_numpy())  # every reference's row is reusable
        references = references.set_column(0, "row", pa.array(rows))
        docs = batch.filter(pa.array(reusable))
        docs = docs.append_column(_REFERENCE_COUNT, pa.array(np.bincount(rows, minlength=docs.num_rows)))
        name = uuid.uuid4().hex
        park(pa.Table.from_batches([docs]), _parked(self._staging, "candidates", name))
        parts = _bucket_parts(references, self._buckets)
        park_parts(parts, _parked(self._staging, REFERENCES, name))
        yield Output(BATCHES, (name, None))
        yield from (Output(PARKED, (bucket, (REFERENCES, name))) for bucket, _ in parts)


class _JoinKeysFn(beam.DoFn):
    """(key bucket, its parked parts) -> Output(FOUND, (candidate batch name, (file, part))) per candidate
    batch with references found in the bucket: (row, slot, shard, shard_row, shard_slot) of each place."""

    def __init__(self, staging: str):
        self._staging = staging

    def process(self, element) -> Iterator[Output]:
        bucket, parked = element
        previous = [unpark_part(path, bucket) for side, path in sorted(parked) if side == PREVIOUS]
        names = sorted(name for side, name in parked if side == REFERENCES)
        if not previous or not names:
            return
        references = []
        for i, name in enumerate(names):
            part = unpark_part(_parked(self._staging, REFERENCES, name), bucket)
            references.append(part.append_column("batch", pa.array(np.full(part.num_rows, i))))
        found = pa.Table.from_batches(references).join(pa.Table.from_batches(previous), "key", join_type="inner")
        if not found.num_rows:
            return
        parts = _parts_by(found.drop_columns(["key"]), "batch")
        path = _parked(self._staging, FOUND, uuid.uuid4().hex)
        park_parts(parts, path)
        yield from (Output(FOUND, (names[part], (path, part))) for part, _ in parts)


class _PlaceCandidatesFn(beam.DoFn):
    """(candidate batch name, its found places) -> Output(MAIN, its documents no previous shard completes);
    the others parked by shard: Output(PLACED, (shard, name)) per shard, with the places wanted from it."""

    def __init__(self, staging: str):
        self._staging = staging

    def process(self, element) -> Iterator[Output]:
        name, found = element
        docs = pa.concat_batches(unpark(_parked(self._staging, "candidates", name)).to_batches())
        wanted = docs.column(_REFERENCE_COUNT).to_numpy()
        docs = docs.drop_columns([_REFERENCE_COUNT])
        parts = [pa.Table.from_batches([unpark_part(path, part)]) for path, part in sorted(f for f in found if f)]
        places = pa.concat_tables(parts) if parts else None
        chosen = np.full(docs.num_rows, -1) if places is None else _chosen_shards(places, wanted)
        if (chosen < 0).any():
            yield Output(MAIN, docs.filter(pa.array(chosen < 0)))
        if not (chosen >= 0).any():
            return
        places = places.filter(pa.array(places.column("shard").to_numpy() == chosen[places.column("row").to_numpy()]))
        shards = np.unique(chosen[chosen >= 0]).tolist()
        park_parts([(shard, docs.filter(pa.array(chosen == shard))) for shard in shards],
                   _parked(self._staging, "placed", name))
        wants = [(shard, pa.concat_batches(_of_documents(places, chosen == shard).to_batches())) for shard in shards]
        park_parts(wants, _parked(self._staging, "wants", name))
        yield from (Output(PLACED, (shard, name)) for shard in shards)


def _chosen_shards(places: pa.Table, wanted: np.ndarray) -> np.ndarray:
    """Places found for a batch's references (row, slot, shard, ...) and each document's number of references
    -> (n,) the smallest shard that holds every one of a document's media, -1 where none does."""
    rows, shards = places.column("row").to_numpy(), places.column("shard").to_numpy()
    order = np.lexsort((shards, rows))
    rows, shards = rows[order], shards[order]
    starts = np.flatnonzero(np.r_[True, (rows[1:] != rows[:-1]) | (shards[1:] != shards[:-1])])
    sizes = np.diff(np.r_[starts, len(rows)])
    complete = starts[sizes == wanted[rows[starts]]]  # (row, shard) runs with a place for every reference
    documents, first = np.unique(rows[complete], return_index=True)  # runs are in shard order: the smallest
    chosen = np.full(len(wanted), -1)
    chosen[documents] = shards[complete][first]
    return chosen


def _of_documents(places: pa.Table, mine: np.ndarray) -> pa.Table:
    """Places of the documents where the (n,) bool `mine` is True, their rows renumbered among those."""
    rows = places.column("row").to_numpy()
    places = places.filter(pa.array(mine[rows]))
    return places.set_column(places.schema.get_field_index("row"), "row",
                             pa.array(_renumbered(mine, places.column("row").to_numpy())))


class _FillFromShardFn(beam.DoFn):
    """(previous shard number, names of the candidate batches placed there) -> Output(REUSED, documents with
    their media from the shard) in batches of at most REUSED_BATCH_ROWS; Output(MAIN, documents whose media
    the shard no longer gives: read again); Output(COUNTS, documents_reused, media_reused)."""

    def __init__(self, previous: PreviousDataset, staging: str):
        self._previous, self._staging = previous, staging

    def process(self, element) -> Iterator[Output]:
        shard, names = element
        batches = [(unpark_part(_parked(self._staging, "placed", name), shard),
                    pa.Table.from_batches([unpark_part(_parked(self._staging, "wants", name), shard)]))
                   for name in sorted(names)]
        media = self._media(shard)
        reused = placed = 0
        for docs, wants in batches:
            found, complete = _found(media, wants, docs.num_rows)
            if not complete.all():
                yield Output(MAIN, docs.filter(pa.array(~complete)))
            found = _of_documents(found, complete)
            docs = docs.filter(pa.array(complete))
            rows = found.column("row").to_numpy()
            for start in range(0, docs.num_rows, REUSED_BATCH_ROWS):
                end = min(start + REUSED_BATCH_ROWS, docs.num_rows)
                mine = (rows >= start) & (rows < end)
                piece = found.filter(pa.array(mine)).set_column(0, "row", pa.array(rows[mine] - start))
                yield Output(REUSED, fill_media(docs.take(pa.array(np.arange(start, end))), piece))
            reused, placed = reused + docs.num_rows, placed + found.num_rows
        yield Output(COUNTS, count(STAGE, documents_reused=reused, media_reused=placed))

    def _media(self, shard: int) -> Optional[pa.Table]:
        """The shard's media targets (row, slot, modality, MEDIA_FIELDS), or None when it cannot be read."""
        try:
            fs, path = filesystem(self._previous.shards[shard])
            with fs.open(path, "rb") as handle:
                docs = pq.ParquetFile(handle).read(columns=["modality", "chunks", *MEDIA_FIELDS])
        except (OSError, pa.ArrowException):
            return None
        return targets(docs, ("modality", *MEDIA_FIELDS))


def _found(media: Optional[pa.Table], wants: pa.Table, documents: int) -> tuple[pa.Table, np.ndarray]:
    """A shard's media targets and the places wanted from it (row, slot, shard_row, shard_slot) -> (the media
    found: row, slot, MEDIA_FIELDS; (documents,) bool: the documents whose every medium is there, loaded)."""
    if media is None or not media.num_rows:
        return wants.select(["row", "slot"]), np.zeros(documents, dtype=bool)
    at = _place_numbers(media.column("row").to_numpy(), media.column("slot").to_numpy())
    wanted = _place_numbers(wants.column("shard_row").to_numpy(), wants.column("shard_slot").to_numpy())
    order = np.argsort(at, kind="stable")
    index = order[np.minimum(np.searchsorted(at, wanted, sorter=order), len(at) - 1)]
    taken = media.take(pa.array(index))
    kind = taken.column("modality")
    loaded = np.asarray(pc.fill_null(pc.or_(pc.and_(pc.equal(kind, "image"), taken.column("blob").is_valid()),
                                            pc.and_(pc.equal(kind, "mesh"), taken.column("point_cloud").is_valid())),
                                     False)) & (at[index] == wanted)
    rows = wants.column("row").to_numpy()
    complete = np.ones(documents, dtype=bool)
    complete[rows[~loaded]] = False
    found = pa.table({"row": wants.column("row"), "slot": wants.column("slot"),
                      **{name: taken.column(name) for name in MEDIA_FIELDS}})
    return found, complete


def _place_numbers(rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """(row, slot) places of a shard's media targets -> one int64 each, in (row, slot) order."""
    return rows.astype(np.int64) * _SLOTS + slots + 1


def _select(outputs: beam.PCollection, kind: str, label: str, element_type=None) -> beam.PCollection:
    step = beam.FlatMap(lambda output: [output.value] if output.kind == kind else [])
    return outputs | label >> (step.with_output_types(element_type) if element_type else step)


class ReuseMedia(beam.PTransform):
    """Stage: main = candidate RecordBatches -> main = (their documents with media loaded by `load`, the run's
    LoadMedia; those found in the previous dataset, taken from it), both RecordBatch PCollections.

    buckets: key buckets of the join (keys and positions only: one per tens of MB of them)."""

    def __init__(self, previous: PreviousDataset, options: MediaOptions, media_root: Optional[str], staging: str,
                 buckets: int, load: beam.PTransform):
        super().__init__()
        self._previous, self._options, self._media_root = previous, options, media_root
        self._staging, self._buckets, self._load = staging, buckets, load

    def expand(self, flow: StageOutput) -> StageOutput:
        staging, buckets = self._staging, self._buckets
        candidates = flow.main | "ParkCandidates" >> beam.ParDo(
            _ParkCandidatesFn(self._options, self._media_root, staging, buckets))
        previous = (flow.main.pipeline
                    | "PreviousShards" >> beam.Create(list(enumerate(self._previous.shards)))
                    | "KeysOfPrevious" >> beam.ParDo(_KeysOfPreviousFn(self._previous, staging, buckets)))
        found = ((_select(candidates, PARKED, "CandidateKeys"), _select(previous, PARKED, "PreviousKeys"))
                 | "AllKeys" >> beam.Flatten()
                 | "GroupByKeyBucket" >> beam.GroupByKey()
                 | "JoinKeys" >> beam.ParDo(_JoinKeysFn(staging)))
        placed = ((_select(candidates, BATCHES, "Batches"), _select(found, FOUND, "Found"))
                  | "BatchesAndPlaces" >> beam.Flatten()
                  | "GroupByBatch" >> beam.GroupByKey()
                  | "PlaceCandidates" >> beam.ParDo(_PlaceCandidatesFn(staging)))
        filled = (_select(placed, PLACED, "Placed")
                  | "GroupByShard" >> beam.GroupByKey()
                  | "FillFromShard" >> beam.ParDo(_FillFromShardFn(self._previous, staging)))
        to_load = ((_select(candidates, MAIN, "NotReusable", pa.RecordBatch),
                    _select(placed, MAIN, "NotFound", pa.RecordBatch),
                    _select(filled, MAIN, "NotInShard", pa.RecordBatch))
                   | "ToLoad" >> beam.Flatten())
        counts = ((_select(previous, COUNTS, "PreviousCounts"), _select(filled, COUNTS, "FillCounts"))
                  | "ReuseCounts" >> beam.Flatten())
        loaded = flow.advance(to_load, counts=counts) | "LoadMedia" >> self._load
        reused = _select(filled, REUSED, "Reused", pa.RecordBatch)
        return loaded._replace(main=(loaded.main, reused))  # not flattened: see StageOutput
