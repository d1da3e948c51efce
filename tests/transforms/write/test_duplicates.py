"""transforms.write.duplicates: the WriteDuplicates stage in a real pipeline writes the duplicate records
the flow carries for a bucket (from the group and near-duplicate stages) to that bucket's duplicates/
shard, sorted by source file and row, and hands on the other FileRecords plus its own, with no duplicate
records left in the flow."""
import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from schemas.documents import CANDIDATE_SCHEMA, DUPLICATE_SCHEMA
from schemas.options import OutputOptions
from transforms.coders import batch_bytes
from transforms.duplicates.records import NEAR, duplicate_records, exact_duplicates
from transforms.stage import StageOutput
from transforms.write.duplicates import WriteDuplicates
from transforms.write.shard_writer import FileRecord

OPTIONS = OutputOptions("unused")


def candidates(*rows: tuple) -> pa.Table:
    """(text, source file, source row) -> candidate documents."""
    return pa.Table.from_pylist([{"modality": "text", "text": t, "source_file": f, "source_row": r} for t, f, r in rows],
                                schema=CANDIDATE_SCHEMA)


def test_duplicates_of_two_stages_are_written_sorted(tmp_path):
    exact = exact_duplicates(candidates(("a", "b.csv", 9), ("a", "a.csv", 4)), np.array([0, 1]),
                             np.array([7, 7], dtype=np.uint64))
    near = duplicate_records(candidates(("c", "a.csv", 2)), np.array([0]), pa.array(["00000000000000aa"]), NEAR,
                             np.array([0.93]), np.array([False]), pa.array(["00000000000000bb"]))
    other = FileRecord("documents", 0, 0, str(tmp_path / "documents" / "x.parquet"), 1, 10)

    def written(records):
        (record,) = [r for r in records if r.folder == "duplicates"]
        assert [r for r in records if r.folder != "duplicates"] == [other]
        table = pq.read_table(record.path)
        assert table.schema == DUPLICATE_SCHEMA and record.rows == 3
        assert list(zip(table.column("source_file").to_pylist(), table.column("source_row").to_pylist(),
                        table.column("kind").to_pylist())) == [("a.csv", 2, "near"), ("a.csv", 4, "exact"),
                                                              ("b.csv", 9, "exact")]
        assert table.column("kept_id").to_pylist() == ["00000000000000aa", "0000000000000007", "0000000000000007"]

    with TestPipeline() as p:
        flow = StageOutput(p | "Files" >> beam.Create([other]), (), (),
                           (p | "Exact" >> beam.Create([(0, batch_bytes(exact))]),
                            p | "Near" >> beam.Create([(0, batch_bytes(near))])))
        out = flow | "WriteDuplicates" >> WriteDuplicates(str(tmp_path), OPTIONS)
        assert out.duplicates == ()
        assert_that(out.main, written)
