"""The Parquet format: `documents/*.parquet` (and the dead letters' `dead_letters/*.parquet`), zstd-compressed,
row groups of PARQUET_ROW_GROUP rows, dictionary encoding only for columns whose values repeat; each file's
schema metadata carries its Hugging Face `datasets` features (write.hf_features)."""
import json
from typing import Union

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.write.hf_features import METADATA_KEY, features
from transforms.write.shard_writer import ShardWriter

PARQUET_ROW_GROUP = 65_536
# Columns whose values are (nearly) all distinct: a dictionary only costs time (pyarrow builds one per row
# group, hashing every value, blobs included, then falls back to plain encoding).
DISTINCT_COLUMNS = frozenset({"id", "text", "uri", "blob", "point_cloud", "source_row", "raw"})


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Parquet column paths (e.g. chunks.list.element.modality) worth dictionary-encoding: every leaf column
    that is not in DISTINCT_COLUMNS or inside one."""
    def leaves(field: pa.Field, prefix: str):
        path = prefix + field.name
        if pa.types.is_struct(field.type):
            for child in field.type:
                yield from leaves(child, path + ".")
        elif pa.types.is_list(field.type) or pa.types.is_large_list(field.type) or pa.types.is_fixed_size_list(field.type):
            yield from leaves(pa.field("element", field.type.value_type), path + ".list.")
        else:
            yield path

    return [path for field in schema for path in leaves(field, "") if not DISTINCT_COLUMNS & set(path.split("."))]


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
            self._writer = pq.ParquetWriter(self._handle, with_features(table.schema), compression="zstd",
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
