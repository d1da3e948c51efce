"""Sampling stage: keep rows by a hash of their content, so the same rows are kept on every run and runner.

--sampling-rate R keeps a row when its hash, read as a number in [0, 1), is below R.
--size N then keeps the N rows with the smallest hashes (a uniform sample of N rows); rows with equal
content tie, and ties are broken by (source_file, source_row).
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import heapq
from typing import Iterator, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa

from transforms.coders import batch_bytes, bytes_batch
from transforms.hashing import content_hashes, unit_interval
from transforms.stage import COUNTS, MAIN, Output, StageOutput, apply_step, count

STAGE = "sample"


def row_hashes(rows: pa.RecordBatch) -> np.ndarray:
    """(n,) uint64 hash of each row's fields (source columns excluded)."""
    return content_hashes(*[rows.column(i) for i in range(rows.num_columns - 2)])


def rank_keys(rows: pa.RecordBatch, hashes: np.ndarray) -> list[tuple]:
    """(hash, source_file, source_row) of every row: the order in which --size keeps rows."""
    return list(zip(hashes.tolist(), rows.column("source_file").to_pylist(), rows.column("source_row").to_pylist()))


class _KeepRateFn(beam.DoFn):
    def __init__(self, rate: float):
        self._rate = rate

    def process(self, rows: pa.RecordBatch) -> Iterator:
        keep = unit_interval(row_hashes(rows)) < self._rate
        if keep.any():
            yield Output(MAIN, rows.filter(pa.array(keep)))
        yield Output(COUNTS, count(STAGE, sampled_out=int((~keep).sum())))


class _SmallestKeysFn(beam.DoFn):
    def __init__(self, size: int):
        self._size = size

    def process(self, rows: pa.RecordBatch) -> Iterator[list]:
        yield heapq.nsmallest(self._size, rank_keys(rows, row_hashes(rows)))


class _SmallestKeys(beam.CombineFn):
    """Lists of rank keys -> the `size`-th smallest key overall, or None when there are fewer."""

    def __init__(self, size: int):
        self._size = size

    def create_accumulator(self):
        return []

    def add_input(self, acc, keys):
        return heapq.nsmallest(self._size, acc + keys)

    def merge_accumulators(self, accs):
        return heapq.nsmallest(self._size, [k for acc in accs for k in acc])

    def extract_output(self, acc):
        return tuple(acc[-1]) if len(acc) >= self._size else None


JOIN_KEYS = 16


class _KeepUpToFn(beam.DoFn):
    """(join key, {"rows": [batches], "last": [threshold]}) -> kept rows; COUNTS (sampled_out)."""

    def process(self, element) -> Iterator[Output]:
        _, joined = element
        (last,) = list(joined["last"]) or [None]
        for rows in map(bytes_batch, joined["rows"]):
            keep = np.ones(rows.num_rows, dtype=bool)
            if last is not None:
                keep = np.array([k <= last for k in rank_keys(rows, row_hashes(rows))], dtype=bool)
            if keep.any():
                yield Output(MAIN, rows.filter(pa.array(keep)))
            yield Output(COUNTS, count(STAGE, sampled_out=int((~keep).sum())))


def _join_key(rows: pa.RecordBatch) -> int:
    return int(rows.column("source_row")[0].as_py()) % JOIN_KEYS


class SampleRows(beam.PTransform):
    """Stage: main = RecordBatches of rows -> main = the rows kept (counts: sampled_out)."""

    def __init__(self, size: Optional[int], rate: Optional[float]):
        super().__init__()
        self._size, self._rate = size, rate

    def expand(self, flow: StageOutput) -> StageOutput:
        if self._rate is not None and self._rate < 1:
            flow = apply_step(flow, "KeepRate", _KeepRateFn(self._rate))
        if self._size is not None:
            rows = flow.main
            # The threshold reaches the rows by a join, not a side input: Beam 2.77's DaskRunner computes a
            # side input wrongly when it shares upstream steps with the main input.
            last = (rows
                    | "SmallestKeys" >> beam.ParDo(_SmallestKeysFn(self._size))
                    | "SizeThreshold" >> beam.CombineGlobally(_SmallestKeys(self._size)).without_defaults()
                    | "ToEveryJoinKey" >> beam.FlatMap(lambda t: [(k, t) for k in range(JOIN_KEYS)]))
            keyed = rows | "KeyRows" >> beam.Map(lambda b: (_join_key(b), batch_bytes(b)))  # bytes: see coders
            joined = {"rows": keyed, "last": last} | "JoinThreshold" >> beam.CoGroupByKey()
            flow = apply_step(flow.advance(joined), "KeepSize", _KeepUpToFn())
        return flow
