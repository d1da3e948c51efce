"""The Parquet format: `documents/*.parquet` (and the dead letters' `dead_letters/*.parquet`), zstd-compressed
(image bytes already in JPEG, PNG, ... stored as they are), row groups of PARQUET_ROW_GROUP rows, dictionary
encoding only for columns whose values repeat; each file's schema metadata carries its Hugging Face
`datasets` features (write.hf_features)."""
import json
from typing import Union

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms.write.hf_features import METADATA_KEY, features
from transforms.write.shard_writer import ShardWriter

PARQUET_ROW_GROUP = 65_536
# Columns whose values are (nearly) all distinct: a dictionary only costs time (pyarrow builds one per row
# group, hashing every value, blobs included, then falls back to plain encoding).
DISTINCT_COLUMNS = frozenset({"id", "text", "uri", "blob", "point_cloud", "source_row", "raw"})
COMPRESSED_IMAGES = pa.array(["image/jpeg", "image/png", "image/webp", "image/gif", "image/avif"])


def leaf_columns(schema: pa.Schema) -> list[str]:
    """Parquet column paths of every leaf column, e.g. chunks.list.element.modality."""
    def leaves(field: pa.Field, prefix: str):
        path = prefix + field.name
        if pa.types.is_struct(field.type):
            for child in field.type:
                yield from leaves(child, path + ".")
        elif pa.types.is_list(field.type) or pa.types.is_large_list(field.type) or pa.types.is_fixed_size_list(field.type):
            yield from leaves(pa.field("element", field.type.value_type), path + ".list.")
        else:
            yield path

    return [path for field in schema for path in leaves(field, "")]


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Parquet column paths worth dictionary-encoding: every leaf column that is not in DISTINCT_COLUMNS or
    inside one."""
    return [path for path in leaf_columns(schema) if not DISTINCT_COLUMNS & set(path.split("."))]


def compression(table: pa.Table) -> dict[str, str]:
    """Parquet column path -> codec for a shard that starts with `table`: zstd, except the image bytes
    (`blob`, a document's or a chunk's) when most images stored in it are JPEG, PNG, WebP, GIF or AVIF: zstd
    gains nothing on them (a few tenths of a percent) and costs CPU to write and to read."""
    mime_types = _stored_image_types(table)
    raw_blobs = len(mime_types) and 2 * pc.sum(pc.is_in(mime_types, COMPRESSED_IMAGES)).as_py() > len(mime_types)
    return {path: "none" if raw_blobs and path.split(".")[-1] == "blob" else "zstd" for path in leaf_columns(table.schema)}


def _stored_image_types(table: pa.Table) -> pa.Array:
    """The mime_type of every image stored in the table (blob present), the documents' and their chunks'."""
    parts = [table.select(["blob", "mime_type"])] if {"blob", "mime_type"} <= set(table.column_names) else []
    if "chunks" in table.column_names:
        chunks = pc.list_flatten(table.column("chunks").combine_chunks())
        if pa.types.is_struct(chunks.type) and {"blob", "mime_type"} <= {f.name for f in chunks.type}:
            parts.append(pa.table({"blob": chunks.field("blob"), "mime_type": chunks.field("mime_type")}))
    types = [part.filter(pc.is_valid(part.column("blob"))).column("mime_type").combine_chunks() for part in parts]
    return pa.concat_arrays([t.cast(pa.string()) for t in types]) if types else pa.array([], pa.string())


def with_features(schema: pa.Schema) -> pa.Schema:
    """The schema with its `datasets` features in its metadata, as `datasets` keeps them in the files it writes."""
    described = json.dumps({"info": {"features": features(schema)}})
    return schema.with_metadata({**(schema.metadata or {}), METADATA_KEY: described})


class ParquetShards(ShardWriter):
    """Documents as Parquet, streamed to any fsspec URL; the schema is the first batch's."""

    name = "parquet"
    folder = "documents"
    suffix = ".parquet"

    _handle = None
    _writer = None

    def _write(self, batch: Union[pa.RecordBatch, pa.Table]) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if self._writer is None:
            self._handle = self._open()
            self._writer = pq.ParquetWriter(self._handle, with_features(table.schema), compression=compression(table),
                                            use_dictionary=dictionary_columns(table.schema))
        self._writer.write_table(table, row_group_size=PARQUET_ROW_GROUP)

    def _close(self) -> int:
        self._writer.close()
        self._handle.close()
        return self._fs.size(self._path)


class DeadLetterShards(ParquetShards):
    """Dead letters as Parquet, in their own folder; not a --format (every run writes them)."""

    name = None
    folder = "dead_letters"


class DuplicateShards(ParquetShards):
    """Duplicate records as Parquet, in their own folder; not a --format (every run writes them)."""

    name = None
    folder = "duplicates"
