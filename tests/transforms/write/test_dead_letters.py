"""transforms.write.dead_letters: the WriteDeadLetters stage in a real pipeline writes every dead letter the
flow carries (from any number of upstream stages) to dead_letters/ sorted by source file then row, and hands
on the documents' FileRecords plus its own, with no dead letters left in the flow."""
import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.documents import DOCUMENT_SCHEMA, DeadLetter, dead_letter_batch
from schemas.options import OutputOptions
from transforms.stage import StageOutput
from transforms.write.dead_letters import WriteDeadLetters
from transforms.write.parquet import ParquetShards
from transforms.write.shard_writer import FileRecord, write_shard

OPTIONS = OutputOptions("unused")

# Two upstream stages' dead letters, each stage's in two batches, in no particular order.
READ_LETTERS = [[DeadLetter("b.csv", 9, "read", "bad_row", "three fields, expected two", "x,y,z"),
                 DeadLetter("a.csv", 30, "read", "bad_row", "one field, expected two", "x")],
                [DeadLetter("a.csv", 2, "read", "invalid_utf8", "bytes that are not UTF-8", "\ufffd")]]
MEDIA_LETTERS = [[DeadLetter("a.csv", 7, "media", "http_404", "the server answered 404", "http://x/7.jpg"),
                  DeadLetter("b.csv", 1, "media", "truncated", "the file is cut short", "1.jpg")],
                 [DeadLetter("a.csv", 11, "media", "mesh_empty", "the file has no points", "m.off")]]
ALL_SORTED = sorted((letter for batches in (READ_LETTERS, MEDIA_LETTERS) for batch in batches for letter in batch),
                    key=lambda d: (d.source_file, d.source_row))


def documents_file(tmp_path) -> FileRecord:
    """A real staged documents shard, as WriteShards would have handed on."""
    table = pa.Table.from_pylist([{"id": "1", "modality": "text", "text": "kept"}], schema=DOCUMENT_SCHEMA)
    return write_shard(ParquetShards, table, str(tmp_path / "documents" / "b00000-0000.parquet"))


def upstream(p, label: str, batches: list[list[DeadLetter]]):
    return p | label >> beam.Create([dead_letter_batch(letters) for letters in batches])


def files_are(documents: FileRecord, dead_letter_files: int, letters_in_order: list[DeadLetter]):
    """A matcher: the documents' record, then `dead_letter_files` dead-letter shards whose rows, file by file
    in (bucket, part) order, are sorted by (source_file, source_row) and are together `letters_in_order`."""
    def match(records):
        dead = sorted((r for r in records if r.folder == "dead_letters"), key=lambda r: (r.bucket, r.part))
        assert [r for r in records if r.folder != "dead_letters"] == [documents]
        assert len(dead) == dead_letter_files
        tables = [pq.read_table(r.path) for r in dead]
        assert [t.num_rows for t in tables] == [r.rows for r in dead]
        for table in tables:
            keys = list(zip(table.column("source_file").to_pylist(), table.column("source_row").to_pylist()))
            assert keys == sorted(keys), "a dead-letter shard is not sorted by file and row"
        found = [DeadLetter(**row) for table in tables for row in table.to_pylist()]
        assert sorted(found, key=lambda d: (d.source_file, d.source_row)) == letters_in_order
    return match


def test_dead_letters_of_two_stages_are_written_sorted_beside_the_documents(tmp_path):
    staging, documents = str(tmp_path), documents_file(tmp_path)
    with TestPipeline() as p:
        counts = p | "Counts" >> beam.Create([{"rows_read": 12}])
        flow = StageOutput(p | "Documents" >> beam.Create([documents]),
                           (upstream(p, "Read", READ_LETTERS), upstream(p, "Media", MEDIA_LETTERS)), (counts,))
        out = flow | WriteDeadLetters(staging, OPTIONS, buckets=1)
        assert out.dead_letters == () and out.counts == (counts,)
        assert_that(out.main, files_are(documents, 1, ALL_SORTED))
    written = pq.read_table(tmp_path / "dead_letters" / "b00000-0000.parquet").to_pylist()
    assert [DeadLetter(**row) for row in written] == ALL_SORTED  # one bucket: one file, in order


def test_several_buckets_each_get_a_sorted_file(tmp_path):
    """Dead letters are cut into buckets by source row (rows 1, 7, 9, 11: bucket 1 of 2; 2, 30: bucket 0)."""
    documents = documents_file(tmp_path)
    with TestPipeline() as p:
        flow = StageOutput(p | "Documents" >> beam.Create([documents]),
                           (upstream(p, "Read", READ_LETTERS), upstream(p, "Media", MEDIA_LETTERS)))
        out = flow | WriteDeadLetters(str(tmp_path), OPTIONS, buckets=2)
        assert_that(out.main, files_are(documents, 2, ALL_SORTED))
    assert sorted(p.name for p in (tmp_path / "dead_letters").iterdir()) == ["b00000-0000.parquet", "b00001-0000.parquet"]
    assert pq.read_table(tmp_path / "dead_letters" / "b00000-0000.parquet").column("source_row").to_pylist() == [2, 30]


def test_no_dead_letters_hands_on_the_documents_alone(tmp_path):
    documents = documents_file(tmp_path)
    with TestPipeline() as p:
        out = StageOutput.start(p | beam.Create([documents])) | WriteDeadLetters(str(tmp_path), OPTIONS, buckets=4)
        assert out.dead_letters == ()
        assert_that(out.main, equal_to([documents]))
    assert not (tmp_path / "dead_letters").exists()
