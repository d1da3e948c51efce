"""The writer interface: each output format is one ShardWriter subclass (registered in write.formats).

A writer is opened on the URL of one shard, takes Arrow batches of DOCUMENT_SCHEMA (or another schema it
is given) in order, and on close says what it wrote as a FileRecord, which the commit stage publishes.
"""
import abc
import dataclasses
import posixpath
from typing import BinaryIO, ClassVar, Optional, Union

import pyarrow as pa

from transforms.storage import filesystem


@dataclasses.dataclass(frozen=True)
class FileRecord:
    """One staged file: its dataset folder, the (bucket, part) that orders it, where it is, rows and bytes,
    and the split its documents belong to ('' without --split)."""

    folder: str
    bucket: int
    part: int
    path: str
    rows: int
    bytes: int
    split: str = ""


class ShardWriter(abc.ABC):
    """Writes one shard of one format. Subclasses set `name` (the --format value, None for internal
    formats), `folder` (the dataset folder its shards go to) and `suffix`, and implement `_write` and `_close`."""

    name: ClassVar[Optional[str]]
    folder: ClassVar[str]
    suffix: ClassVar[str]

    def __init__(self, url: str):
        self.url = url
        self.rows = 0
        self._fs, self._path = filesystem(url)

    def _open(self) -> BinaryIO:
        """The shard's file, opened for writing (its folder created)."""
        self._fs.makedirs(posixpath.dirname(self._path), exist_ok=True)
        return self._fs.open(self._path, "wb")

    def write(self, batch: Union[pa.RecordBatch, pa.Table]) -> None:
        """Append rows to the shard."""
        self.rows += batch.num_rows
        self._write(batch)

    def close(self, bucket: int = 0, part: int = 0, split: str = "") -> FileRecord:
        """Finish the shard -> its FileRecord (split, bucket and part order the shards at commit)."""
        return FileRecord(self.folder, bucket, part, self.url, self.rows, self._close(), split)

    @abc.abstractmethod
    def _write(self, batch: Union[pa.RecordBatch, pa.Table]) -> None:
        """Write the batch's rows."""

    @abc.abstractmethod
    def _close(self) -> int:
        """Flush and close -> the file's size in bytes."""


def write_shard(writer: type[ShardWriter], table: pa.Table, url: str, bucket: int = 0, part: int = 0,
                split: str = "") -> FileRecord:
    """Write a whole table as one shard of the given format -> its FileRecord."""
    shard = writer(url)
    shard.write(table)
    return shard.close(bucket, part, split)
