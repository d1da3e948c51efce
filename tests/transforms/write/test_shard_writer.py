"""transforms.write.shard_writer: the ShardWriter contract, through the real writers: batches written one
after the other make one file, and close() reports it as a FileRecord that matches the file on disk."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.docarray_docs import docs_from_bytes, docs_to_table
from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA, DeadLetter, dead_letter_batch
from transforms.write.docarray import DocArrayShards
from transforms.write.parquet import DeadLetterShards, ParquetShards
from transforms.write.shard_writer import FileRecord, ShardWriter, write_shard


def documents(first: int, count: int) -> pa.Table:
    rows = [{"id": f"{i:04d}", "modality": "text", "text": f"document {i}", "label": f"label {i % 2}",
             "source_file": "in.csv", "source_row": i + 1} for i in range(first, first + count)]
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)


def read_back(writer: type[ShardWriter], path) -> pa.Table:
    if writer is DocArrayShards:
        return docs_to_table(docs_from_bytes(path.read_bytes()))
    return pq.read_table(path)


@pytest.mark.parametrize("writer, folder", [(ParquetShards, "documents"), (DocArrayShards, "docarray")])
def test_batches_written_in_order_make_one_file_and_its_record(tmp_path, writer, folder):
    path = tmp_path / "staging" / writer.folder / f"b00003-0002{writer.suffix}"  # parents do not exist yet
    shard = writer(str(path))
    shard.write(documents(0, 3))
    shard.write(documents(3, 4).to_batches()[0])  # a RecordBatch works as well as a Table
    shard.write(documents(7, 0))  # an empty batch adds nothing
    record = shard.close(bucket=3, part=2)
    assert record == FileRecord(folder, 3, 2, str(path), 7, path.stat().st_size)
    assert record.bytes > 0
    assert read_back(writer, path).equals(documents(0, 7))


def test_close_defaults_to_bucket_0_part_0(tmp_path):
    shard = ParquetShards(str(tmp_path / "one.parquet"))
    shard.write(documents(0, 1))
    record = shard.close()
    assert (record.bucket, record.part, record.rows) == (0, 0, 1)


@pytest.mark.parametrize("writer", [ParquetShards, DocArrayShards])
def test_write_shard_writes_a_whole_table(tmp_path, writer):
    path = tmp_path / f"shard{writer.suffix}"
    record = write_shard(writer, documents(0, 5), str(path), bucket=1, part=4)
    assert record == FileRecord(writer.folder, 1, 4, str(path), 5, path.stat().st_size)
    assert read_back(writer, path).equals(documents(0, 5))


def test_dead_letter_shards_take_their_own_schema(tmp_path):
    path = tmp_path / "dead.parquet"
    letters = dead_letter_batch([DeadLetter("in.csv", 4, "read", "bad_row", "two fields, expected one", "a,b"),
                                 DeadLetter(None, None, "read", "unreadable", "no such file")])
    record = write_shard(DeadLetterShards, pa.Table.from_batches([letters]), str(path))
    assert record == FileRecord("dead_letters", 0, 0, str(path), 2, path.stat().st_size)
    assert pq.read_table(path).equals(pa.Table.from_batches([letters], schema=DEAD_LETTER_SCHEMA))


def test_every_writer_declares_where_its_shards_go():
    for writer in (ParquetShards, DocArrayShards, DeadLetterShards):
        assert issubclass(writer, ShardWriter)
        assert writer.folder and writer.suffix.startswith(".")
    assert (ParquetShards.name, DocArrayShards.name, DeadLetterShards.name) == ("parquet", "docarray", None)


def test_the_interface_cannot_be_opened_itself():
    with pytest.raises(TypeError):
        ShardWriter("x.bin")
