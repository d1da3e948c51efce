"""Small fsspec helpers: every read and write takes a URL; local paths are URLs too."""
import posixpath

import fsspec
import pyarrow as pa

# A dataset folder is complete when SUCCESS exists; MANIFEST lists its shards and counts.
SUCCESS = "_SUCCESS"
MANIFEST = "manifest.json"


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
