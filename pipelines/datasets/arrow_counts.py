"""Counting over Arrow columns with pyarrow and numpy alone, for `finetune-etl summary` and its sections.

pyarrow imports pandas (about 0.4 s) the first time it converts a Python value to Arrow, hands numpy an
array or groups a table; these helpers never do, so a summary costs what reading its columns costs.
"""
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def text_scalar(text: str) -> pa.Scalar:
    """A Python string -> an Arrow string scalar, built from its bytes (not converted, which imports pandas)."""
    data = text.encode()
    return pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, len(data)], dtype=np.int32)), pa.py_buffer(data))[0]


def count_equal(values: pa.ChunkedArray, value: str) -> int:
    """How many of `values` equal `value`."""
    return pc.sum(pc.equal(values, text_scalar(value)), min_count=0).as_py()


def numbers(values: pa.ChunkedArray) -> np.ndarray:
    """Arrow numbers -> the non-null ones as float64 (n,), through DLPack (np.asarray would import pandas)."""
    return np.from_dlpack(values.drop_null().combine_chunks().cast(pa.float64()))


def stats(values: np.ndarray) -> Optional[dict]:
    """Numbers (n,) -> {min, median, max}, or None when there are none."""
    if not values.size:
        return None
    return {"min": as_number(values.min()), "median": float(np.median(values)), "max": as_number(values.max())}


def as_number(value: float):
    """A float -> an int when it is a whole number, else the float (what JSON and the tables show)."""
    return int(value) if float(value).is_integer() else float(value)


def value_counts(values) -> pa.Table:
    """Values -> a table of each distinct value (nulls left out) and how many times it occurs: (value, count)."""
    counts = pc.value_counts(values)
    table = pa.table({"value": counts.field("values"), "count": counts.field("counts")})
    return table.filter(pc.is_valid(table.column("value")))


def tally(values) -> dict:
    """Values -> {value: how many}, sorted by value (nulls left out)."""
    counts = value_counts(values)
    return dict(sorted(zip(counts.column("value").to_pylist(), counts.column("count").to_pylist())))


def first_valid(values: pa.ChunkedArray):
    """The first non-null value, or None."""
    values = values.drop_null()
    return values[0].as_py() if len(values) else None
