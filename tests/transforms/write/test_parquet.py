"""transforms.write.parquet: documents written as zstd Parquet in row groups of PARQUET_ROW_GROUP rows read
back identical; only columns whose values repeat are dictionary-encoded; image bytes already compressed are
stored as they are; dead letters go to their own folder; any fsspec URL works (memory:// here)."""
import io
import json

import datasets
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA, DeadLetter, dead_letter_batch
from transforms.write.hf_features import METADATA_KEY, features
from PIL import Image

from transforms.write.parquet import (DISTINCT_COLUMNS, PARQUET_ROW_GROUP, DeadLetterShards, ParquetShards,
                                      dictionary_columns, leaf_columns)
from transforms.write.shard_writer import write_shard
from transforms.write.write_shards import staged_path


def documents(count: int) -> pa.Table:
    """Text documents and pairs: a label and modality that repeat, ids and texts that do not."""
    def row(i):
        pair = i % 2 == 1
        chunks = [{"modality": "text", "text": f"query {i}"}, {"modality": "image", "uri": f"u{i}.jpg",
                                                                "mime_type": "image/jpeg", "width": 2}]
        return {"id": f"{i:06d}", "label": f"label {i % 5}", "modality": "pair" if pair else "text",
                "text": None if pair else f"document {i}", "chunks": chunks if pair else None,
                "source_file": "in.csv", "source_row": i + 1}
    return pa.Table.from_pylist([row(i) for i in range(count)], schema=DOCUMENT_SCHEMA)


def column_chunks(metadata: pq.FileMetaData, group: int = 0) -> dict:
    """Parquet column path -> its column chunk metadata in one row group."""
    row_group = metadata.row_group(group)
    return {row_group.column(i).path_in_schema: row_group.column(i) for i in range(row_group.num_columns)}


def row_group_sizes(path) -> list[int]:
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]


def test_round_trip_in_zstd_row_groups_of_parquet_row_group(tmp_path):
    table = documents(PARQUET_ROW_GROUP + 100)
    path = tmp_path / "documents" / "b00000-0000.parquet"
    record = write_shard(ParquetShards, table, str(path))
    assert (record.rows, record.bytes) == (table.num_rows, path.stat().st_size)
    assert pq.read_table(path).equals(table)
    assert pq.ParquetFile(path).schema_arrow == DOCUMENT_SCHEMA
    assert row_group_sizes(path) == [PARQUET_ROW_GROUP, 100]
    assert {c.compression for c in column_chunks(pq.ParquetFile(path).metadata).values()} == {"ZSTD"}


def test_each_file_carries_the_datasets_features_of_its_columns(tmp_path):
    path = tmp_path / "d.parquet"
    write_shard(ParquetShards, documents(3), str(path))
    metadata = json.loads(pq.read_schema(path).metadata[METADATA_KEY])
    assert metadata == {"info": {"features": features(DOCUMENT_SCHEMA)}}
    assert datasets.Features.from_dict(metadata["info"]["features"])["blob"] == datasets.Image()


def test_batches_streamed_one_by_one_read_back_as_one_table(tmp_path):
    """Each write adds its own row groups (none above PARQUET_ROW_GROUP) to the one file."""
    table = documents(1000)
    path = tmp_path / "streamed.parquet"
    shard = ParquetShards(str(path))
    for batch in table.to_batches(max_chunksize=300):
        shard.write(batch)
    assert shard.close().rows == 1000
    assert pq.read_table(path).equals(table)
    assert row_group_sizes(path) == [300, 300, 300, 100]


def test_only_repeating_columns_get_a_dictionary(tmp_path):
    path = tmp_path / "d.parquet"
    write_shard(ParquetShards, documents(200), str(path))
    chunks = column_chunks(pq.ParquetFile(path).metadata)
    with_dictionary = {name for name, chunk in chunks.items() if chunk.has_dictionary_page}
    assert with_dictionary == set(dictionary_columns(DOCUMENT_SCHEMA))
    assert {"label", "modality", "source_file", "chunks.list.element.modality"} <= with_dictionary
    assert not {"id", "text", "uri", "source_row", "chunks.list.element.text", "chunks.list.element.uri"} & with_dictionary


def test_dictionary_columns_of_the_document_schema():
    assert dictionary_columns(DOCUMENT_SCHEMA) == [
        "label", "score", "modality", "mime_type", "width", "height", "point_cloud_from",
        "chunks.list.element.modality", "chunks.list.element.mime_type", "chunks.list.element.width",
        "chunks.list.element.height", "chunks.list.element.point_cloud_from", "source_file", "split",
        "duplicate_group"]
    assert dictionary_columns(DEAD_LETTER_SCHEMA) == ["source_file", "stage", "reason_class", "reason"]


def test_dictionary_columns_walks_structs_and_every_kind_of_list(tmp_path):
    schema = pa.schema([
        ("where", pa.struct([("uri", pa.string()), ("kind", pa.string())])),
        ("tags", pa.large_list(pa.string())),
        ("vector", pa.list_(pa.float32(), 3)),
        ("nested", pa.list_(pa.struct([("blob", pa.binary()), ("inner", pa.list_(pa.int32()))]))),
        ("raw", pa.string()),
    ])
    assert dictionary_columns(schema) == ["where.kind", "tags.list.element", "vector.list.element",
                                          "nested.list.element.inner.list.element"]
    path = tmp_path / "nested.parquet"
    row = {"where": {"uri": "u", "kind": "k"}, "tags": ["a"], "vector": [1, 2, 3],
           "nested": [{"blob": b"x", "inner": [1]}], "raw": "r"}
    write_shard(ParquetShards, pa.Table.from_pylist([row], schema=schema), str(path))
    paths = set(column_chunks(pq.ParquetFile(path).metadata))
    assert set(dictionary_columns(schema)) <= paths, "a path that Parquet does not have would be ignored"


def image_documents(fmt: str, count: int = 6) -> pa.Table:
    """Image documents (and CLIP pairs whose chunk is an image) with real bytes in `fmt`, made here."""
    def encoded(i):
        buffer = io.BytesIO()
        Image.effect_noise((64, 48), 40 + i).convert("RGB").save(buffer, fmt)
        return buffer.getvalue()
    Image.init()
    mime = Image.MIME[fmt]
    rows = []
    for i in range(count):
        image = {"modality": "image", "blob": encoded(i), "mime_type": mime, "width": 64, "height": 48}
        rows.append({"id": f"{i:06d}", "label": "l", **image} if i % 2 else
                    {"id": f"{i:06d}", "label": "l", "modality": "pair",
                     "chunks": [{"modality": "text", "text": f"caption {i}"}, image]})
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)


@pytest.mark.parametrize("fmt, blobs", [("JPEG", "UNCOMPRESSED"), ("PNG", "UNCOMPRESSED"), ("BMP", "ZSTD")])
def test_image_bytes_are_compressed_again_only_when_that_can_help(tmp_path, fmt, blobs):
    path = tmp_path / "images.parquet"
    table = image_documents(fmt)
    write_shard(ParquetShards, table, str(path))
    chunks = column_chunks(pq.ParquetFile(path).metadata)
    assert set(chunks) == set(leaf_columns(DOCUMENT_SCHEMA)), "a codec for a path Parquet does not have is ignored"
    assert {name: chunks[name].compression for name in ("blob", "chunks.list.element.blob")} == {
        "blob": blobs, "chunks.list.element.blob": blobs}
    assert {chunk.compression for name, chunk in chunks.items() if not name.endswith("blob")} == {"ZSTD"}
    assert pq.read_table(path).equals(table.replace_schema_metadata(pq.read_table(path).schema.metadata))


def test_text_documents_are_compressed_in_every_column(tmp_path):
    path = tmp_path / "text.parquet"
    write_shard(ParquetShards, documents(50), str(path))
    assert {chunk.compression for chunk in column_chunks(pq.ParquetFile(path).metadata).values()} == {"ZSTD"}


@pytest.mark.parametrize("name", sorted(DISTINCT_COLUMNS))
def test_a_distinct_column_is_skipped_at_any_depth(name):
    schema = pa.schema([(name, pa.string()), ("outer", pa.list_(pa.struct([(name, pa.string()), ("keep", pa.string())])))])
    assert dictionary_columns(schema) == ["outer.list.element.keep"]


def test_dead_letters_go_to_their_own_folder(tmp_path):
    assert (DeadLetterShards.folder, DeadLetterShards.suffix) == ("dead_letters", ".parquet")
    url = staged_path(str(tmp_path), DeadLetterShards, 0, 0)
    assert url == str(tmp_path / "dead_letters" / "b00000-0000.parquet")
    letters = pa.Table.from_batches([dead_letter_batch([DeadLetter("in.csv", 2, "read", "bad_row", "why", "x")])])
    record = write_shard(DeadLetterShards, letters, url)
    assert record.folder == "dead_letters"
    assert pq.read_table(url).equals(letters)


def test_writes_to_a_memory_url():
    fs = fsspec.filesystem("memory")
    url = "memory://test-parquet/staging/documents/b00001-0000.parquet"
    try:
        record = write_shard(ParquetShards, documents(10), url, bucket=1)
        assert (record.path, record.rows, record.bytes) == (url, 10, fs.size(url))
        with fs.open(url, "rb") as handle:
            assert pq.read_table(handle).equals(documents(10))
    finally:
        fs.rm("/test-parquet", recursive=True)
