"""Group stage: candidate documents -> each write bucket's finished documents (ids given, repeats removed,
each removed repeat listed as an exact duplicate record).

The one shuffle goes through the staging folder, so no runner holds the dataset in memory: each worker
cuts its candidate batches by `_key % buckets` and gathers the parts of many batches in one spill file of
about `spill_bytes` (`spill/all/<uuid>.arrow`, Arrow IPC, one record batch per bucket in bucket order, each
one's bucket listed in its schema metadata), so staged objects grow with the data, not with batches x buckets; only
(bucket, path) pairs are grouped. A bucket's step then reads its record batches of each of its files,
sorts by key, numbers equal documents by occurrence (k = 0, 1, ...), drops repeats where the layout removes
duplicates, and gives ids (the hex key, plus `-k` for k > 0). Emits (bucket, Table of
DOCUMENT_SCHEMA) per bucket, for the write stage.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import uuid
from typing import Iterator, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.documents import DOCUMENT_SCHEMA, KEY, RAW
from transforms.coders import BUCKET_TABLE, batch_bytes
from transforms.document_keys import hex_ids, repeats, sort_order, with_loaded_media
from transforms.duplicates.records import compact, exact_duplicates
from transforms.stage import COUNTS, DUPLICATES, MAIN, Output, StageOutput, apply_step, count
from transforms.storage import filesystem, join_url, write_arrow_batches

STAGE = "group"
SPILL_BYTES = 64 << 20  # a spill file holds about this much of a worker's candidates, every bucket's
_BUCKETS = b"buckets"  # spill file schema metadata: the bucket of each record batch, comma-separated


def split_by_bucket(batch: pa.RecordBatch, keys: np.ndarray, buckets: int,
                    keep: Optional[np.ndarray] = None) -> Iterator[tuple]:
    """A batch and its (n,) uint64 keys -> (bucket, sub-batch) for every bucket present, rows in batch order;
    only the rows where the (n,) bool `keep` is True, when given. One take, then zero-copy slices."""
    rows = np.flatnonzero(keep) if keep is not None else np.arange(len(keys))
    bucket_of = (keys[rows] % np.uint64(buckets)).astype(np.int64)
    order = np.argsort(bucket_of, kind="stable")
    sorted_buckets = bucket_of[order]
    taken = batch.take(pa.array(rows[order]))
    starts = np.flatnonzero(np.r_[True, sorted_buckets[1:] != sorted_buckets[:-1]]) if len(order) else order
    for start, end in zip(starts, np.r_[starts[1:], len(order)]):
        yield int(sorted_buckets[start]), taken.slice(start, end - start)


def removed_repeats(docs, remove_duplicates: bool, order: Optional[np.ndarray] = None) -> np.ndarray:
    """(n,) bool: the documents to remove as repeats of an earlier one (in `order`, the output order when
    not given): every repeat where the layout removes duplicates, else repeats of loaded media only."""
    media = None if remove_duplicates else with_loaded_media(docs)
    if media is not None and not media.any():
        return np.zeros(docs.num_rows, dtype=bool)
    repeat = repeats(docs, sort_order(docs) if order is None else order)
    return repeat if media is None else repeat & media


def queries(docs) -> np.ndarray:
    """(n,) bool: query documents of query-document pairs (their content is their label). A query named by
    several rows is one document: its repeats are counted (query_repeats) but not listed as duplicates."""
    label = _array(docs.column("label"))
    content = pc.coalesce(_array(docs.column("text")), _array(docs.column("uri")))
    return np.asarray(pc.fill_null(pc.equal(content, label), False))


def finish_documents(table: pa.Table, remove_duplicates: bool) -> tuple[pa.Table, Optional[tuple]]:
    """Candidates of one bucket -> (documents of DOCUMENT_SCHEMA sorted by id, (repeats removed, the
    duplicate records of those listed), or None when none was removed).

    Ids are the hex key, plus `-k` for the k-th later document with the same key (kept repeats)."""
    order = sort_order(table)
    removed = None
    repeat = removed_repeats(table, remove_duplicates, order)
    if repeat.any():
        listed = np.flatnonzero(repeat & ~queries(table)) if remove_duplicates else np.flatnonzero(repeat)
        removed = (int(repeat.sum()), exact_duplicates(table, listed, table.column(KEY).to_numpy()))
        order = order[~repeat[order]]
    table = table.take(pa.array(order))  # one pass over the strings: sort and drop together
    keys = table.column(KEY).to_numpy()
    ids = hex_ids(keys)
    again = np.flatnonzero(np.r_[False, keys[1:] == keys[:-1]]) if keys.size else keys
    if again.size:
        run_start = np.maximum.accumulate(np.where(np.r_[True, keys[1:] != keys[:-1]], np.arange(keys.size), 0))
        suffixed = ids.to_pylist()
        for i in again.tolist():
            suffixed[i] += f"-{i - run_start[i]}"
        ids = pa.array(suffixed, type=pa.string())
    table = table.drop_columns([KEY, RAW]).add_column(0, "id", ids)
    return table.cast(DOCUMENT_SCHEMA), removed


class _SpillFile:
    """The parts of one spill file being gathered: (bucket -> batches), their size, the file's path."""

    def __init__(self, staging: str):
        self.path = join_url(staging, "spill", "all", f"{uuid.uuid4().hex}.arrow")
        self.parts: dict[int, list] = {}
        self.nbytes = 0

    def write(self) -> None:
        """One record batch per bucket, in bucket order, each one's bucket listed in the schema metadata.
        A bucket's parts are joined as it is written (and then let go): written one by one, the thousands
        of few-row parts of media batches cost a compressed buffer per column each, to write and to read."""
        buckets = sorted(self.parts)
        schema = self.parts[buckets[0]][0].schema.with_metadata({_BUCKETS: ",".join(map(str, buckets)).encode()})
        write_arrow_batches(schema, (self._joined(b).replace_schema_metadata(schema.metadata) for b in buckets),
                            self.path)

    def _joined(self, bucket: int) -> pa.RecordBatch:
        """The bucket's parts as one record batch; the parts are dropped."""
        table = pa.Table.from_batches(self.parts.pop(bucket)).combine_chunks()
        return pa.RecordBatch.from_arrays([column.chunk(0) for column in table.columns], schema=table.schema)


def read_bucket(path: str, bucket: int) -> pa.Table:
    """A bucket's rows in one spill file (only its record batches are read)."""
    fs, local = filesystem(path)
    with fs.open(local, "rb") as handle:
        reader = pa.ipc.open_file(handle)
        listed = reader.schema.metadata[_BUCKETS].decode().split(",")
        batches = [reader.get_batch(i).replace_schema_metadata(None) for i, b in enumerate(listed) if b == str(bucket)]
    return pa.Table.from_batches(batches)


class _SpillFn(beam.DoFn):
    """Candidate batches -> Output(MAIN, (bucket, spill file path)) the first time a bucket has rows for a
    file; Output(COUNTS, ...). A file is written once it holds `spill_bytes`, or at the end of the bundle.

    Every (bucket, path) is emitted from process (some runners, Beam 2.77's DaskRunner, drop what
    finish_bundle emits); finish_bundle only writes the last file, whose paths are already out."""

    def __init__(self, staging: str, buckets: int, remove_duplicates: bool, spill_bytes: int = SPILL_BYTES):
        self._staging, self._buckets, self._remove, self._spill_bytes = staging, buckets, remove_duplicates, spill_bytes
        self._file: Optional[_SpillFile] = None

    def start_bundle(self) -> None:
        self._file = None

    def process(self, batch: pa.RecordBatch) -> Iterator[Output]:
        # A repeat follows its first copy in key order, so it is in the same bucket: drop repeats before cutting.
        repeat = removed_repeats(batch, self._remove)
        keys = batch.column(KEY).to_numpy()
        if repeat.any():
            listed = np.flatnonzero(repeat & ~queries(batch)) if self._remove else np.flatnonzero(repeat)
            yield Output(COUNTS, count(STAGE, duplicates_removed=int(repeat.sum()),
                                       query_repeats=int(repeat.sum()) - listed.size))
            if listed.size:
                records = exact_duplicates(batch, listed, keys)
                for bucket, part in split_by_bucket(records, keys[listed], self._buckets):
                    yield Output(DUPLICATES, (bucket, batch_bytes(compact(part))))
        for bucket, part in split_by_bucket(batch, keys, self._buckets, ~repeat):
            if self._file is None:
                self._file = _SpillFile(self._staging)
                yield Output(COUNTS, count(STAGE, staged_objects=1))
            if bucket not in self._file.parts:
                self._file.parts[bucket] = []
                yield Output(MAIN, (bucket, self._file.path))
            self._file.parts[bucket].append(part)
            self._file.nbytes += part.nbytes
        if self._file is not None and self._file.nbytes >= self._spill_bytes:
            self._write()

    def finish_bundle(self) -> None:
        if self._file is not None:
            self._write()

    def _write(self) -> None:
        self._file.write()
        self._file = None


class _FinishBucketFn(beam.DoFn):
    """(bucket, [spill paths]) -> Output(MAIN, (bucket, documents Table)); Output(COUNTS, duplicates_removed)."""

    def __init__(self, remove_duplicates: bool):
        self._remove = remove_duplicates

    def process(self, element) -> Iterator[Output]:
        bucket, paths = element
        tables = [read_bucket(path, bucket) for path in sorted(paths)]
        table, removed = finish_documents(pa.concat_tables(tables), self._remove)
        yield Output(MAIN, (bucket, table))
        if removed is not None:
            repeats_removed, records = removed
            yield Output(COUNTS, count(STAGE, duplicates_removed=repeats_removed,
                                       query_repeats=repeats_removed - records.num_rows))
            if records.num_rows:
                yield Output(DUPLICATES, (bucket, batch_bytes(compact(records))))


class GroupDocuments(beam.PTransform):
    """Stage: main = candidate RecordBatches -> main = (bucket, Table of DOCUMENT_SCHEMA sorted by id) pairs;
    duplicates += (bucket, the repeats removed from it as a DUPLICATE_SCHEMA batch in Arrow IPC bytes)."""

    def __init__(self, staging: str, buckets: int, remove_duplicates: bool, spill_bytes: int = SPILL_BYTES):
        super().__init__()
        self._staging, self._buckets, self._remove, self._spill_bytes = staging, buckets, remove_duplicates, spill_bytes

    def expand(self, flow: StageOutput) -> StageOutput:
        spill = _SpillFn(self._staging, self._buckets, self._remove, self._spill_bytes)
        spilled = apply_step(flow, "SpillToBuckets", spill, None, duplicates=True)
        grouped = spilled.advance(spilled.main | "GroupByBucket" >> beam.GroupByKey())
        return apply_step(grouped, "FinishBuckets", _FinishBucketFn(self._remove), BUCKET_TABLE, duplicates=True)


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
