"""What the split stage keeps in the staging folder between its steps, as Arrow IPC files: each bucket's
documents until their splits are known, its documents' rows for the plan, its links cut by partition.
Beam carries only the files' paths: bulk data copied through a runner's data plane costs several times
its size in CPU and fresh memory pages.

Files are written by transforms.storage: uncompressed by pyarrow itself on a local disk, where they are
memory-mapped when read (a reader touches only the columns and record batches it uses); lz4-compressed on
object stores.
"""

from typing import Callable, Iterator

import pyarrow as pa

from transforms.storage import filesystem, read_arrow, write_arrow
from transforms.uris import is_local

_PARTS = b"parts"  # schema metadata of a file cut in parts: the part of each record batch, comma-separated


def park(table: pa.Table, url: str) -> None:
    """Write a table (its record batches as they are) to url."""
    write_arrow(table, url)


def unpark(url: str) -> pa.Table:
    """The table parked at url."""
    if not is_local(url):
        return read_arrow(url)
    with pa.memory_map(filesystem(url)[1]) as source:
        return pa.ipc.open_file(source).read_all()


def park_parts(parts: list[tuple], url: str) -> None:
    """(part, record batch) pairs of one schema -> one file at url, each part's batch readable alone; a part
    is named by str(part), and names hold no comma."""
    listed = ",".join(str(part) for part, _ in parts).encode()
    schema = parts[0][1].schema.with_metadata({_PARTS: listed})
    park(pa.Table.from_batches([batch.replace_schema_metadata(schema.metadata) for _, batch in parts], schema), url)


def unpark_parts(url: str, wanted: Callable[[str], bool]) -> Iterator[tuple[str, pa.RecordBatch]]:
    """(name, record batch) of each part of a file written by park_parts whose name wanted(name) accepts, in
    the file's order; only those batches are read."""
    fs, path = filesystem(url)
    with (pa.memory_map(path) if is_local(url) else fs.open(path, "rb")) as source:
        reader = pa.ipc.open_file(source)
        for index, name in enumerate(reader.schema.metadata[_PARTS].decode().split(",")):
            if wanted(name):
                yield name, reader.get_batch(index).replace_schema_metadata(None)


def unpark_part(url: str, part) -> pa.RecordBatch:
    """One part's record batch of a file written by park_parts (only that batch is read)."""
    for _, batch in unpark_parts(url, str(part).__eq__):
        return batch
    raise ValueError(f"{url} has no part {part}")
