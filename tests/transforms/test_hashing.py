"""Stable 64-bit content hashes: their properties, and golden values pinned for fixed inputs."""
import hashlib

import numpy as np
import pyarrow as pa
import pytest

from transforms.hashing import (LONG_STRING, category_hashes, column_hashes, combined_hashes, content_hashes,
                                folded_hashes, string_hashes, unfolded_hashes, unit_interval)

STRINGS = ["", "a", "hello world", "exactly8", "nine char", None]


def hashes(values, type=pa.string()) -> list[int]:
    return column_hashes(pa.array(values, type)).tolist()


# --- properties ---------------------------------------------------------------------------------------


def test_equal_values_hash_equally_wherever_they_are():
    """The same string hashes the same at any position, in any array, sliced or chunked, large or not."""
    values = ["x", "a much longer value than one word", "x", "ü", "a much longer value than one word"]
    h = hashes(values)
    assert h[0] == h[2] and h[1] == h[4]
    assert len(set(h)) == 3
    assert column_hashes(pa.array(values)[1:4]).tolist() == h[1:4]
    assert hashes(values, pa.large_string()) == h
    chunked = pa.chunked_array([pa.array(values[:2]), pa.array(values[2:])])
    assert string_hashes(chunked).tolist() == h
    assert hashes([v.encode() for v in values], pa.binary()) == h  # the UTF-8 bytes are what is hashed


def test_sliced_batch_column_hashes_like_a_fresh_array():
    batch = pa.RecordBatch.from_pydict({"t": [f"value {i}" * (i % 4) for i in range(50)]})
    part = batch.slice(17, 9).column("t")
    assert column_hashes(part).tolist() == hashes(part.to_pylist())


def test_null_empty_and_whitespace_differ():
    h = hashes([None, "", " ", "\0"])
    assert len(set(h)) == 4


def test_every_byte_counts():
    """Values that differ in one byte anywhere (first, 8-byte boundary, last) or only in length differ."""
    base = "0123456789abcdefXYZ"
    variants = [base] + [base[:i] + "#" + base[i + 1:] for i in (0, 7, 8, 15, 16, len(base) - 1)]
    variants += [base + "\0", base[:-1], base[:8], base[:16]]
    assert len(set(hashes(variants))) == len(variants)


def test_numbers_hash_by_value_and_null_is_not_zero():
    ints = hashes([0, 1, 42, None], pa.int64())
    floats = hashes([0.0, 1.0, 42.0, None], pa.float64())
    assert ints == floats  # numbers are hashed as float64
    assert ints[0] != ints[3] and len(set(ints)) == 4
    assert hashes(["1"]) != hashes([1], pa.int64())


def test_all_null_columns_hash_like_nulls():
    null = hashes([None])[0]
    assert hashes([None, None], pa.string()) == [null, null]
    assert column_hashes(pa.nulls(3, pa.float64())).tolist() == [null] * 3
    assert category_hashes(pa.nulls(2, pa.string())).tolist() == [null] * 2


@pytest.mark.parametrize("length", [LONG_STRING - 1, LONG_STRING, LONG_STRING + 1, 5000])
def test_long_strings_hash_by_content_too(length):
    """Around and above LONG_STRING: equal texts hash equally, a change in the last byte changes the hash."""
    text = ("abcdefghij" * (length // 10 + 1))[:length]
    changed = text[:-1] + "!"
    h = hashes([text, text, changed, text[:-1]])
    assert h[0] == h[1] and len(set(h)) == 3


def test_strings_above_long_string_are_blake2b_of_their_bytes():
    text = "é" * LONG_STRING  # 2 bytes each: well above LONG_STRING bytes
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    assert hashes([text]) == [int.from_bytes(digest, "little")]


def test_content_hashes_are_combined_column_hashes_in_column_order():
    a, b = pa.array(["x", "y", None]), pa.array(["y", "x", ""])
    ab = content_hashes(a, b)
    assert ab.tolist() == combined_hashes([column_hashes(a), column_hashes(b)]).tolist()
    assert all(left != right for left, right in zip(ab.tolist(), content_hashes(b, a).tolist()))
    assert ab[0] != ab[1]  # ("x", "y") is not ("y", "x")
    assert content_hashes(a).tolist() != column_hashes(a).tolist()


def test_unfolding_the_last_columns_gives_the_hash_of_the_columns_before_them():
    rng = np.random.default_rng(4)
    columns = [rng.integers(0, 2**64, 10_000, dtype=np.uint64, endpoint=False) for _ in range(4)]
    columns[3][:3] = [0, 2**64 - 1, 1]  # the extremes fold and unfold too
    whole = combined_hashes(columns)
    assert unfolded_hashes(whole, columns[2:]).tolist() == combined_hashes(columns[:2]).tolist()
    assert unfolded_hashes(whole, columns[1:]).tolist() == combined_hashes(columns[:1]).tolist()
    assert folded_hashes(unfolded_hashes(whole, columns[1:]), columns[1:]).tolist() == whole.tolist()
    assert unfolded_hashes(whole, []).tolist() == whole.tolist()
    assert unfolded_hashes(whole, columns[2:][::-1]).tolist() != combined_hashes(columns[:2]).tolist()  # order counts


def test_category_hashes_equal_column_hashes():
    values = pa.array(["text", "image", None, "text", "mesh", "image", None])
    assert category_hashes(values).tolist() == column_hashes(values).tolist()
    chunked = pa.chunked_array([values[:3], values[3:]])
    assert category_hashes(chunked).tolist() == column_hashes(values).tolist()


def test_unit_interval_is_in_zero_one_and_keeps_order():
    h = np.array([0, 1, 2**11, 2**63, 2**64 - 1], dtype=np.uint64)
    u = unit_interval(h)
    assert u.dtype == np.float64
    assert u[0] == 0.0 and u[-1] < 1.0
    assert ((u >= 0) & (u < 1)).all()
    assert (np.diff(u) >= 0).all()
    spread = unit_interval(column_hashes(pa.array([f"row {i}" for i in range(2000)])))
    assert 0.4 < spread.mean() < 0.6  # hashes of distinct rows spread over the interval


# --- golden values ------------------------------------------------------------------------------------
# These literals were computed once with the current code. A change of any of them changes the id of every
# document of every published dataset (ids are these hashes), and which rows sampling keeps: do not
# update them unless that is the intent, announced as a breaking change.

def test_golden_column_hashes_of_strings():
    assert hashes(STRINGS) == [3501367487286918588, 9485895136849741254, 3641711559508256675,
                               14527893764521587235, 7545667125574832349, 7640891576956012809]


def test_golden_column_hashes_of_numbers():
    assert hashes([0.0, 1.5, -2.0, None], pa.float64()) == [
        327839587669482679, 2665752970141805127, 10401083236245582853, 7640891576956012809]
    assert hashes([0, 1, 42], pa.int64()) == [327839587669482679, 3823076132037288023, 690644419187211352]


def test_golden_column_hashes_of_a_long_string():
    assert hashes(["x" * 2000]) == [16228424759418744465]


def test_golden_category_hashes():
    assert category_hashes(pa.array(["text", "image", "text", None])).tolist() == [
        873527193519462960, 16799546983016440265, 873527193519462960, 7640891576956012809]


def test_golden_content_and_combined_hashes():
    assert content_hashes(pa.array(["a", "b"]), pa.array(["label 1", None])).tolist() == [
        17795842968242001939, 11213615512828072271]
    assert combined_hashes([np.array([1, 2], np.uint64), np.array([3, 4], np.uint64)]).tolist() == [
        14115611544775585012, 10360402045774277285]


def test_golden_unit_interval():
    assert unit_interval(np.array([3501367487286918588, 2**64 - 1], dtype=np.uint64)).tolist() == [
        3501367487286918588 // 2**11 / 2**53, (2**53 - 1) / 2**53]
