"""Small fsspec helpers: every read and write takes a URL; local paths are URLs too."""
import io
import posixpath

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_ROW_GROUP = 65_536


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
        pq.write_table(table, handle, compression="zstd", row_group_size=PARQUET_ROW_GROUP)
    return fs.size(path)
