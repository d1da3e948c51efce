"""Stream a prepared dataset to a training job, one row group at a time, from any fsspec URL.

    for batch in stream(url, batch_size=1024, shuffle_seed=0, rank=rank, world_size=world_size):
        ...                                          # pyarrow RecordBatches of at most 1,024 rows

Each of the world_size * num_workers readers (reader = rank * num_workers + worker) reads its own share of
the dataset's row groups (stream_work.divide), so every row is read by exactly one reader per epoch. Without
shuffle_seed rows come in file order; with it, each epoch's order comes from (seed, epoch, reader): the
reader's row groups in a seeded permutation, then a seeded shuffle buffer (shuffle_buffer.py). A stream
holds one row group, one batch and, when shuffled, the batches that hold the buffer's rows (at most about twice
the buffer: held rows are not copied at every row group, only when that much is held).
`state_dict()` between two batches is a small JSON-able dict (the buffer as row coordinates, not data) from
which `load_state_dict` resumes a new stream exactly where it was. `iter_docs` gives docarray DocLists
instead of RecordBatches.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, NamedTuple, Optional

import numpy as np
import pyarrow as pa

from pipelines.datasets.shuffle_buffer import ShuffleBuffer
from pipelines.datasets.stream_work import Listing, Piece, RowGroupReader, divide, list_row_groups
from schemas.documents import DOCUMENT_SCHEMA

if TYPE_CHECKING:
    from docarray import DocList

    from schemas.docarray_docs import TrainingDoc


class Position(NamedTuple):
    """Where an epoch's stream stands between two batches: `piece` (the step: index in the reader's pieces
    in the epoch's order; one past the last: the buffer's last rows), `rows` of the step's output already
    yielded, and as they were when the step began: the buffer's (row group, row) coordinates in slot order
    and the shuffle generator's state (None without shuffle_seed)."""

    piece: int
    rows: int
    buffer: np.ndarray
    rng: Optional[dict]


NO_ROWS = np.empty((0, 2), np.int64)
START = Position(0, 0, NO_ROWS, None)


class _Batch:
    """Emitted rows collected into one RecordBatch of at most `size` rows."""

    def __init__(self, size: int):
        self.size, self.rows, self._parts = size, 0, []

    @property
    def room(self) -> int:
        return self.size - self.rows

    def add(self, part: pa.RecordBatch) -> None:
        self._parts.append(part)
        self.rows += part.num_rows

    def take(self) -> pa.RecordBatch:
        """The rows collected, as one RecordBatch (copied only when they came from two parts); empties it."""
        parts, self._parts, self.rows = self._parts, [], 0
        return parts[0] if len(parts) == 1 else pa.concat_batches(parts)


class _Pool:
    """Rows that batches are taken from, kept as the record batches they came in (when shuffled: the batches
    that hold the buffer's rows, then a row group's); a key numbers a row across them, in that order. Taking
    rows copies only those rows: a held row is not copied again at every row group (with images, rows of
    tens of kilobytes, that copying was most of a shuffled epoch). Columns null in every row are not taken
    but given as null arrays, made once per length: a text dataset's media columns are all null."""

    def __init__(self, parts: list[pa.RecordBatch]):
        self.parts = [part for part in parts if part.num_rows] or parts[:1]
        self.schema = self.parts[0].schema
        self.starts = np.cumsum([0] + [part.num_rows for part in self.parts])
        self._null = [all(part.column(i).null_count == part.num_rows for part in self.parts)
                      for i in range(len(self.schema))]
        kept = [i for i, null in enumerate(self._null) if not null]
        self._taken = [part.select(kept) for part in self.parts]
        self._nulls: dict[int, list] = {}

    @property
    def num_rows(self) -> int:
        return int(self.starts[-1])

    def extended(self, rows: pa.RecordBatch) -> "_Pool":
        """This pool with `rows` after its rows (keys num_rows .. num_rows + len(rows) - 1)."""
        return _Pool(self.parts + [rows])

    def take(self, keys: np.ndarray) -> pa.RecordBatch:
        """Rows `keys`, in that order, as one RecordBatch."""
        if len(keys) not in self._nulls:
            self._nulls[len(keys)] = [pa.nulls(len(keys), field.type) if null else None
                                      for field, null in zip(self.schema, self._null)]
        taken = iter(self._gather(keys).columns)
        columns = [nulls if null else next(taken) for nulls, null in zip(self._nulls[len(keys)], self._null)]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def _gather(self, keys: np.ndarray) -> pa.RecordBatch:
        """The non-null columns of rows `keys`, in that order. When the keys are at least half the pool (a
        text row group through a smaller buffer), the batches are joined and taken from (a copy of the pool,
        then of the keys' rows); else each batch the keys fall in is taken from, and one more take puts the
        rows back in the keys' order (three copies of the keys' rows, none of the rest). pyarrow's own take
        over a chunked table would always join first."""
        if len(self._taken) == 1:
            return self._taken[0].take(keys)
        if self.num_rows <= 2 * len(keys):
            return pa.concat_batches(self._taken).take(keys)
        part = np.searchsorted(self.starts, keys, side="right") - 1
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(len(self._taken) + 1))
        pieces = [self._taken[p].take(keys[order[bounds[p]:bounds[p + 1]]] - self.starts[p])
                  for p in range(len(self._taken)) if bounds[p + 1] > bounds[p]]
        if not pieces:
            return self._taken[0].slice(0, 0)
        back = np.empty(len(keys), np.int64)
        back[order] = np.arange(len(keys))
        return pa.concat_batches(pieces).take(back)


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    """A table as one RecordBatch (copied only when a column comes in several chunks)."""
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


class DatasetStream:
    """An iterable over one reader's share of a dataset, epoch by epoch: RecordBatches, dict rows or DocLists
    (`output`). Build it with `stream()` or `iter_docs()`.

    Iterating starts the current epoch from its beginning, or from the state last given to load_state_dict.
    The epoch changes only with set_epoch (as torch's DistributedSampler): call it before each epoch."""

    def __init__(self, url: str, listing: Listing, pieces: list[Piece], schema: pa.Schema, identity: dict,
                 output: str):
        self.url, self.schema, self.epoch = url, schema, 0
        self._listing, self._pieces, self._identity, self._output = listing, pieces, identity, output
        self._resume: Optional[tuple[Position, int]] = None  # a loaded state, for the next iteration
        self._state: tuple[int, Position, int] = (0, START, 0)  # (epoch, position, rows of a batch out)

    def __len__(self) -> int:
        """Rows this reader yields per epoch."""
        return sum(piece.stop - piece.start for piece in self._pieces)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration streams (its order, when shuffled), from its beginning."""
        self.epoch, self._resume = epoch, None
        self._state = (epoch, START, 0)

    def state_dict(self) -> dict:
        """Where the stream stands, as a JSON-able dict: the stream's settings (checked on load), the epoch,
        `row_group` (index in the reader's row groups, or row-group slices, in this epoch's order), `rows` of
        it already read (emitted, or taken into the shuffle buffer), `buffer` ([row group, row] of each row
        held in the shuffle buffer), `rng` (the shuffle generator's state) and `skip` (rows of the next batch
        already yielded: dict rows stop mid-batch)."""
        epoch, position, skip = self._state
        return {"stream": dict(self._identity), "epoch": epoch, "row_group": position.piece, "rows": position.rows,
                "buffer": position.buffer.tolist(), "rng": position.rng, "skip": skip}

    def load_state_dict(self, state: dict) -> None:
        """Resume from a state_dict() of a stream of the same dataset run and settings: the next iteration
        yields exactly what the saved stream had still to yield. ValueError for a state of another stream."""
        if state["stream"] != self._identity:
            differ = sorted(k for k in self._identity if state["stream"].get(k) != self._identity[k])
            raise ValueError(f"the state is of another stream (it differs in {', '.join(differ)}).")
        buffer = np.array(state["buffer"], np.int64).reshape(-1, 2)
        position = Position(state["row_group"], state["rows"], buffer, state["rng"])
        self.epoch, self._resume = state["epoch"], (position, state["skip"])
        self._state = (self.epoch, position, state["skip"])

    def __iter__(self) -> Iterator:
        position, skip = self._resume or (START, 0)
        self._resume, self._state = None, (self.epoch, position, skip)
        return self._outputs(self.epoch, position, skip)

    def _order(self, epoch: int) -> tuple[list[Piece], Optional[np.random.Generator]]:
        """The reader's pieces in the epoch's order, and the generator that drew it (None: file order)."""
        seed = self._identity["seed"]
        if seed is None:
            return self._pieces, None
        rng = np.random.default_rng([seed, epoch, self._identity["reader"]])
        return [self._pieces[i] for i in rng.permutation(len(self._pieces))], rng

    def _outputs(self, epoch: int, start: Position, skip: int) -> Iterator:
        """_batches without the `skip` rows already yielded, as the stream's output; keeps _state current."""
        before = start
        for batch, after in self._batches(epoch, start):
            batch, done, skip = batch.slice(skip), skip, 0
            if self._output == "rows":
                after = after._replace(buffer=after.buffer.copy())  # still current while its rows are yielded
                for n, row in enumerate(batch.to_pylist(), done + 1):
                    self._state = (epoch, before, n)
                    yield row
            self._state, before = (epoch, after, 0), after
            if self._output != "rows" and batch.num_rows:
                yield batch if self._output == "batches" else _docs(batch)

    def _batches(self, epoch: int, start: Position) -> Iterator[tuple[pa.RecordBatch, Position]]:
        """The epoch's batches from `start`, each with the position after it.

        The epoch is a sequence of steps: one per piece (its rows in file order or, shuffled, the rows the
        piece sends out of the buffer, drawn in one vectorised call), then one that empties the buffer. A
        step's output is computed whole from the buffer and generator as they were when it began, so a
        position names a step, those two, and how many of the step's rows were yielded: resuming computes
        the step again and skips them."""
        pieces, rng = self._order(epoch)
        if rng is not None and start.rng is not None:
            rng.bit_generator.state = start.rng
        reader = RowGroupReader(self.url, self._listing.row_groups, self.schema)
        capacity = self._identity["shuffle_buffer"] if rng is not None else 0
        buffer = ShuffleBuffer(capacity, rng, start.buffer) if capacity else None
        held = _Pool([_one_batch(reader.read_rows(start.buffer))]) if capacity else None  # slot order
        out = _Batch(self._identity["batch_size"])

        def now(step: int, rows: int = 0) -> Position:
            return Position(step, rows, NO_ROWS if buffer is None else buffer.coordinates.copy(),
                            None if rng is None else rng.bit_generator.state)

        try:
            for step in range(start.piece, len(pieces) + 1):
                before = now(step)
                if step < len(pieces):
                    piece = pieces[step]
                    rows = _one_batch(reader.read(piece.row_group).slice(piece.start, piece.stop - piece.start))
                    if buffer is not None:
                        rows, held = _through_buffer(buffer, held, rows, piece)
                elif buffer is not None and len(buffer):
                    rows, held = held.take(buffer.release(len(buffer))), None
                else:
                    break
                i, size = (start.rows if step == start.piece else 0), rows.num_rows
                while i < size:
                    n = min(out.room, size - i)
                    out.add(rows.slice(i, n))
                    i += n
                    if not out.room:
                        yield out.take(), before._replace(rows=i) if i < size else now(step + 1)
            if out.rows:
                yield out.take(), now(len(pieces) + 1)
        finally:
            reader.close()


def _through_buffer(buffer: ShuffleBuffer, held: _Pool, rows: pa.RecordBatch, piece: Piece) -> tuple[pa.RecordBatch, _Pool]:
    """A piece's rows through the shuffle buffer, in one vectorised step -> (the rows that leave, in order;
    the pool the buffer's keys now point into). `held` is the pool they pointed into before. The held rows
    are copied into one batch, in slot order, and the rest let go, when that copy is small next to the
    piece (the buffer holds no more rows than it), or when the pool holds more than twice the buffer (or
    the piece); until then the pool keeps the batches rows came in (images through a large buffer)."""
    first, size = held.num_rows, rows.num_rows
    pool = held.extended(rows)  # keys: the held pool's rows, then the piece's
    keys, coordinates = first + np.arange(size), _coordinates(piece, 0, size)
    room = min(buffer.room, size)
    buffer.hold(keys[:room], coordinates[:room])
    leaving = buffer.swap(keys[room:], coordinates[room:]) if size > room else np.empty(0, np.int64)
    emitted = pool.take(leaving)
    if len(buffer) <= size or pool.num_rows > 2 * max(buffer.capacity, size):
        pool = _Pool([pool.take(buffer.keys)])
        buffer.renumber()
    return emitted, pool


def _coordinates(piece: Piece, i: int, n: int) -> np.ndarray:
    """(row group, row) of rows i .. i + n - 1 of a piece, an (n, 2) array."""
    coordinates = np.empty((n, 2), np.int64)
    coordinates[:, 0] = piece.row_group
    coordinates[:, 1] = np.arange(piece.start + i, piece.start + i + n)
    return coordinates


def _docs(batch: pa.RecordBatch) -> DocList[TrainingDoc]:
    """Rows of DOCUMENT_SCHEMA -> their DocList, converted as load_docs converts Parquet rows."""
    from schemas.docarray_docs import table_to_docs

    return table_to_docs(pa.Table.from_batches([batch]))


def _open(url: str, split: Optional[str], columns: Optional[list[str]], output: str, batch_size: int,
          shuffle_seed: Optional[int] = None, shuffle_buffer: int = 10_000, rank: int = 0, world_size: int = 1,
          worker: int = 0, num_workers: int = 1) -> DatasetStream:
    """The arguments of stream() -> this reader's DatasetStream, yielding `output`: "batches", "rows" or "docs"."""
    for name, value, bound in (("rank", rank, world_size), ("worker", worker, num_workers)):
        if not 0 <= value < bound:
            raise ValueError(f"{name} {value} is not in [0, {bound}).")
    if batch_size < 1 or shuffle_buffer < 0 or (shuffle_seed is not None and shuffle_seed < 0):
        raise ValueError("batch_size must be at least 1, shuffle_buffer and shuffle_seed not negative.")
    schema = DOCUMENT_SCHEMA if columns is None else pa.schema([DOCUMENT_SCHEMA.field(c) for c in columns])
    listing = list_row_groups(url, split)
    reader, readers = rank * num_workers + worker, world_size * num_workers
    pieces = divide([group.rows for group in listing.row_groups], reader, readers)
    identity = {"run_id": listing.run_id, "split": split, "reader": reader, "readers": readers,
                "batch_size": batch_size, "seed": shuffle_seed, "shuffle_buffer": shuffle_buffer}
    return DatasetStream(url, listing, pieces, schema, identity, output)


def stream(url: str, split: Optional[str] = None, columns: Optional[list[str]] = None, batch_size: int = 1024,
           shuffle_seed: Optional[int] = None, shuffle_buffer: int = 10_000, rank: int = 0, world_size: int = 1,
           worker: int = 0, num_workers: int = 1, rows: bool = False) -> DatasetStream:
    """A prepared dataset (or one split) at any fsspec URL -> a DatasetStream of this reader's rows: pyarrow
    RecordBatches of DOCUMENT_SCHEMA (or of just `columns`; columns older datasets lack come back null) of
    at most batch_size rows, or dict rows with rows=True.

    rank / world_size: this process among the training processes; worker / num_workers: this data-loader
    worker among the process's. shuffle_seed: None streams in file order; an int (>= 0) shuffles each epoch
    (see set_epoch) with a buffer of shuffle_buffer rows (0: only the row groups' order is shuffled).
    UnknownSplit (a ValueError) for a split the dataset does not have."""
    return _open(url, split, columns, "rows" if rows else "batches", batch_size, shuffle_seed, shuffle_buffer,
                 rank, world_size, worker, num_workers)


def iter_docs(url: str, split: Optional[str] = None, batch_size: int = 256, **options) -> DatasetStream:
    """A prepared dataset (or one split) -> a DatasetStream of DocList[TrainingDoc] batches of at most
    batch_size documents, converted as load_docs converts Parquet rows (schemas.docarray_docs.table_to_docs).
    `options`: stream()'s shuffle_seed, shuffle_buffer, rank, world_size, worker, num_workers."""
    return _open(url, split, None, "docs", batch_size, **options)
