"""What each reader of a stream reads: the row groups of a dataset's Parquet shards, and their division.

A dataset's row groups are listed from the Parquet footers of the shards its manifest names, in the
manifest's order; a row group is known by its index in that list. `divide` hands them out to the readers of
a training job (every rank's data-loader workers): whole row groups when there are at least as many as
readers, else an even slice of every row group to each reader. Every row goes to exactly one reader.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.datasets.load import READ_THREADS, DatasetChanging, conformed, read_snapshot, shards_of
from transforms.storage import filesystem, join_url
from transforms.write.parquet import ParquetShards


class RowGroup(NamedTuple):
    """One row group of a shard: the shard's path inside the dataset, its index in the file, its rows."""

    path: str
    index: int
    rows: int


class Piece(NamedTuple):
    """Rows [start, stop) of the dataset's row group number `row_group` (its index in the listing)."""

    row_group: int
    start: int
    stop: int


class Listing(NamedTuple):
    """The run whose manifest was read, and the row groups of the shards it lists, in the manifest's order."""

    run_id: str
    row_groups: list[RowGroup]


def list_row_groups(url: str, split: Optional[str] = None) -> Listing:
    """The row groups of a dataset (or of one split) from its shards' Parquet footers, read on a stable
    snapshot (see load.read_snapshot); ValueError when the dataset has no Parquet shards (--format docarray)
    or no such split."""
    fs, path = filesystem(url)

    def footer(shard: dict) -> list[RowGroup]:
        with fs.open(join_url(path, shard["path"]), "rb") as handle:
            metadata = pq.ParquetFile(handle).metadata
        return [RowGroup(shard["path"], i, metadata.row_group(i).num_rows) for i in range(metadata.num_row_groups)]

    def read(manifest: dict) -> Listing:
        if not manifest["shards"][ParquetShards.folder]:
            from transforms.write.formats import folder_of  # imports docarray: only for this rare case

            if manifest["shards"][folder_of("docarray")]:
                raise ValueError(f"{url} has no Parquet shards (written with --format docarray): nothing to stream.")
        with ThreadPoolExecutor(READ_THREADS) as pool:
            footers = pool.map(footer, shards_of(manifest, ParquetShards.folder, split))
            return Listing(manifest["run_id"], [group for groups in footers for group in groups])
    return read_snapshot(url, read)


def divide(rows: list[int], reader: int, readers: int) -> list[Piece]:
    """Row counts of the dataset's row groups -> the pieces reader number `reader` (of `readers`) reads, in
    row-group order: every readers-th row group starting at its own number, or, when there are fewer row
    groups than readers, its slice [reader * n // readers, (reader + 1) * n // readers) of each; pieces
    without rows are left out."""
    if not 0 <= reader < readers:
        raise ValueError(f"reader {reader} is not one of {readers} readers (rank * num_workers + worker).")
    if len(rows) >= readers:
        pieces = [Piece(i, 0, rows[i]) for i in range(reader, len(rows), readers)]
    else:
        pieces = [Piece(i, reader * n // readers, (reader + 1) * n // readers) for i, n in enumerate(rows)]
    return [piece for piece in pieces if piece.stop > piece.start]


class RowGroupReader:
    """Reads row groups of one dataset through fsspec, keeping the shard last read open, each row group
    conformed to `schema` (columns that older datasets lack come back null, as in load_table)."""

    def __init__(self, url: str, row_groups: list[RowGroup], schema: pa.Schema):
        self._fs, self._root = filesystem(url)
        self._row_groups, self._schema = row_groups, schema
        self._columns = schema.names
        self._open_path, self._handle, self._file = None, None, None

    def read(self, index: int) -> pa.Table:
        """The rows of row group number `index` of the listing; DatasetChanging when its shard no longer
        has that row group (a new run replaced the dataset)."""
        group = self._row_groups[index]
        if group.path != self._open_path:
            self.close()
            self._handle = self._fs.open(join_url(self._root, group.path), "rb")
            self._file, self._open_path = pq.ParquetFile(self._handle), group.path
        metadata = self._file.metadata
        if group.index >= metadata.num_row_groups or metadata.row_group(group.index).num_rows != group.rows:
            raise DatasetChanging(f"{group.path} changed while it was streamed; start a new stream.")
        return conformed(self._file.read_row_group(group.index, columns=self._columns), self._schema)

    def read_rows(self, coordinates: np.ndarray) -> pa.Table:
        """Rows named by (row group, row) coordinates (an (n, 2) integer array) -> a table of them in that
        order, reading one row group at a time."""
        by_group = np.argsort(coordinates[:, 0], kind="stable")
        parts = []
        for index in np.unique(coordinates[:, 0]):
            wanted = by_group[coordinates[by_group, 0] == index]
            parts.append(self.read(int(index)).take(pa.array(coordinates[wanted, 1])))
        grouped = pa.concat_tables(parts) if parts else self._schema.empty_table()
        return grouped.take(pa.array(np.argsort(by_group)))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._open_path, self._handle, self._file = None, None, None
