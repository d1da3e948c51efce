"""Small fsspec helpers: every read and write takes a URL; local paths are URLs too."""
import posixpath

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_ROW_GROUP = 65_536
# A dataset folder is complete when SUCCESS exists; MANIFEST lists its shards and counts.
SUCCESS = "_SUCCESS"
MANIFEST = "manifest.json"


def is_local(url: str) -> bool:
    """True for plain paths and file:// URLs."""
    return "://" not in url or url.startswith("file://")


def join_url(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts)


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """URL -> (its filesystem, the path within it)."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def write_bytes(data: bytes, url: str) -> int:
    """Write data to url (parents created); returns its size in bytes."""
    fs, path = filesystem(url)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(data)
    return len(data)


def write_parquet(table: pa.Table, url: str) -> int:
    """Write a table as one Parquet file (zstd, row groups of PARQUET_ROW_GROUP rows), streamed to storage;
    returns the file's size in bytes."""
    fs, path = filesystem(url)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "wb") as handle:
        pq.write_table(table, handle, compression="zstd", row_group_size=PARQUET_ROW_GROUP,
                       use_dictionary=dictionary_columns(table.schema))
    return fs.size(path)


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


def write_arrow(table: pa.Table, url: str) -> None:
    """Write a table as an lz4-compressed Arrow IPC file (the shuffle's spill format)."""
    fs, path = filesystem(url)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with fs.open(path, "wb") as handle, pa.ipc.new_file(handle, table.schema, options=options) as writer:
        writer.write_table(table)


def read_arrow(url: str) -> pa.Table:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as handle:
        return pa.ipc.open_file(handle).read_all()
