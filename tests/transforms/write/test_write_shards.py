"""transforms.write.write_shards: how a bucket is cut into shards, where shards are staged, and the
WriteShards stage in a real pipeline writing one file per format per shard."""
import math
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.docarray_docs import docs_from_bytes, docs_to_table
from schemas.documents import DOCUMENT_SCHEMA
from schemas.options import OutputOptions
from transforms.stage import StageOutput, SumCounts
from transforms.write.docarray import DocArrayShards
from transforms.write.parquet import ParquetShards
from transforms.write.shard_writer import FileRecord
from transforms.write.write_shards import WriteShards, shard_slices, staged_path, write_bucket

BOTH = (ParquetShards, DocArrayShards)


def options(shard_rows: int = 500_000, shard_bytes: int = 256 * 1024 * 1024) -> OutputOptions:
    return OutputOptions("unused", shard_rows=shard_rows, shard_bytes=shard_bytes)


def documents(bucket: int, count: int) -> pa.Table:
    rows = [{"id": f"{bucket}-{i:04d}", "modality": "text", "text": f"bucket {bucket} document {i}",
             "source_file": "in.csv", "source_row": i + 1} for i in range(count)]
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)


def read_shard(record: FileRecord) -> pa.Table:
    if record.folder == "docarray":
        with open(record.path, "rb") as handle:
            return docs_to_table(docs_from_bytes(handle.read()))
    return pq.read_table(record.path)


def assert_covers(slices: list[tuple[int, int]], num_rows: int) -> None:
    """The slices are contiguous, non-empty and cover rows 0..num_rows in order."""
    assert [offset for offset, _ in slices] == [sum(n for _, n in slices[:i]) for i in range(len(slices))]
    assert sum(n for _, n in slices) == num_rows and all(n > 0 for _, n in slices)


def test_one_shard_when_under_both_limits():
    assert shard_slices(10, 5000, options()) == [(0, 10)]


def test_rows_limit_cuts_into_even_shards():
    assert shard_slices(10, 100, options(shard_rows=3)) == [(0, 2), (2, 3), (5, 3), (8, 2)]
    assert shard_slices(9, 100, options(shard_rows=3)) == [(0, 3), (3, 3), (6, 3)]


def test_bytes_limit_cuts_into_shards_of_about_shard_bytes():
    assert shard_slices(100, 10_000, options(shard_bytes=1024)) == [(i * 10, 10) for i in range(10)]


@pytest.mark.parametrize("rows, nbytes, shard_rows, shard_bytes", [
    (1, 10, 1, 1024), (7, 7_000, 2, 1024), (1000, 50_000, 300, 4096), (5, 10**9, 100, 1024), (65_537, 1, 65_536, 1024),
])
def test_slices_cover_the_rows_and_respect_both_limits(rows, nbytes, shard_rows, shard_bytes):
    slices = shard_slices(rows, nbytes, options(shard_rows, shard_bytes))
    assert_covers(slices, rows)
    assert max(n for _, n in slices) <= shard_rows
    assert len(slices) == min(rows, max(math.ceil(rows / shard_rows), math.ceil(nbytes / shard_bytes)))


def test_an_empty_bucket_has_no_shards():
    assert shard_slices(0, 0, options()) == []


def test_staged_path_names_folder_bucket_part_and_suffix(tmp_path):
    assert staged_path(str(tmp_path), ParquetShards, 12, 3) == str(tmp_path / "documents" / "b00012-0003.parquet")
    assert staged_path("gs://bucket/run/.staging/", DocArrayShards, 0, 0) == "gs://bucket/run/.staging/docarray/b00000-0000.docs"


def test_write_bucket_writes_one_file_per_format_per_shard(tmp_path):
    table = documents(7, 10)
    records = list(write_bucket(table, 7, str(tmp_path), options(shard_rows=4), BOTH))
    assert [(r.folder, r.bucket, r.part, r.rows) for r in records] == [
        ("documents", 7, 0, 3), ("docarray", 7, 0, 3), ("documents", 7, 1, 4), ("docarray", 7, 1, 4),
        ("documents", 7, 2, 3), ("docarray", 7, 2, 3)]
    assert sorted(os.listdir(tmp_path / "documents")) == [f"b00007-000{p}.parquet" for p in range(3)]
    assert sorted(os.listdir(tmp_path / "docarray")) == [f"b00007-000{p}.docs" for p in range(3)]
    for folder in ("documents", "docarray"):
        shards = [read_shard(r) for r in records if r.folder == folder]
        assert pa.concat_tables(shards).equals(table)


def records_match_the_files(expected: dict[tuple[str, int, int], int]):
    """A matcher: FileRecords keyed (folder, bucket, part) with these row counts, each path a staged file
    of that many rows and that many bytes."""
    def match(records):
        assert {(r.folder, r.bucket, r.part): r.rows for r in records} == expected
        for r in records:
            assert os.path.getsize(r.path) == r.bytes and read_shard(r).num_rows == r.rows
    return match


def test_write_shards_stage_in_a_pipeline(tmp_path):
    staging = str(tmp_path / "staging")
    buckets = [(0, documents(0, 5)), (3, documents(3, 2))]
    with TestPipeline() as p:
        flow = StageOutput.start(p | beam.Create(buckets)) | WriteShards(staging, options(shard_rows=3), BOTH)
        expected = {(folder, 0, part): rows for part, rows in ((0, 2), (1, 3)) for folder in ("documents", "docarray")}
        expected.update({("documents", 3, 0): 2, ("docarray", 3, 0): 2})
        assert_that(flow.main, records_match_the_files(expected), label="Files")
        counts = flow.counts | "AllCounts" >> beam.Flatten(pipeline=p) | beam.CombineGlobally(SumCounts())
        assert_that(counts, equal_to([{"documents_written": 7}]), label="Counts")
        dead = flow.dead_letters | "AllDead" >> beam.Flatten(pipeline=p)
        assert_that(dead, equal_to([]), label="NoDeadLetters")
    assert sorted(os.listdir(tmp_path / "staging" / "docarray")) == ["b00000-0000.docs", "b00000-0001.docs", "b00003-0000.docs"]


def test_write_shards_stage_with_one_format(tmp_path):
    with TestPipeline() as p:
        flow = StageOutput.start(p | beam.Create([(1, documents(1, 4))])) | WriteShards(
            str(tmp_path), options(), (ParquetShards,))
        assert_that(flow.main, records_match_the_files({("documents", 1, 0): 4}))
    assert not (tmp_path / "docarray").exists()
