"""Read a prepared dataset back, from any fsspec URL, using its manifest.

A read is a snapshot: the manifest is read before and after the shards, and the read starts over when a
new run committed in between, so a reader never returns a mix of two runs. Shards are found only through
the manifest (on object stores they live under `versions/RUN/`: see transforms.commit).
"""
import time
from typing import Callable, Optional, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from docarray import DocList

from schemas.docarray_docs import TrainingDoc, docs_from_bytes, docs_to_table, table_to_docs
from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA
from transforms.storage import MANIFEST, SUCCESS, filesystem, join_url, read_manifest
from transforms.write.formats import DEAD_LETTERS, folder_of

ATTEMPTS = 5
T = TypeVar("T")


class DatasetChanging(RuntimeError):
    """Runs kept committing to the dataset while it was read."""


def load_manifest(url: str) -> dict:
    """The manifest of a complete dataset; FileNotFoundError when the dataset is missing or incomplete."""
    fs, path = filesystem(url)
    manifest = read_manifest(url) if fs.exists(join_url(path, SUCCESS)) else None
    if manifest is None:
        raise FileNotFoundError(f"{url} holds no complete dataset (no {SUCCESS} marker, or no {MANIFEST}).")
    return manifest


def read_snapshot(url: str, read: Callable[[dict], T]) -> T:
    """read(manifest) on a stable dataset: retried when another run commits while it reads.
    FileNotFoundError when no complete dataset is there; DatasetChanging when runs keep committing."""
    for attempt in range(ATTEMPTS):
        before = load_manifest(url)
        try:
            result = read(before)
        except (FileNotFoundError, OSError):
            result = None
        try:
            after = load_manifest(url)
        except FileNotFoundError:
            after = None
        if result is not None and after is not None and after["run_id"] == before["run_id"]:
            return result
        time.sleep(0.2 * (attempt + 1))
    raise DatasetChanging(f"{url} kept changing while it was read ({ATTEMPTS} attempts); try again later.")


def read_parquet_shards(url: str, shards: list, columns: Optional[list[str]] = None) -> list[pa.Table]:
    """The manifest's shard entries of a dataset -> one table per shard, of all columns or just `columns`
    (dotted paths such as chunks.list.element.modality pick nested leaves)."""
    fs, path = filesystem(url)
    tables = []
    for shard in shards:
        with fs.open(join_url(path, shard["path"]), "rb") as handle:
            tables.append(pq.ParquetFile(handle).read(columns=columns))
    return tables


def _read_docs(url: str, shards: list) -> DocList[TrainingDoc]:
    fs, path = filesystem(url)
    docs = DocList[TrainingDoc]()
    for shard in shards:
        with fs.open(join_url(path, shard["path"]), "rb") as handle:
            docs.extend(docs_from_bytes(handle.read()))
    return docs


def _table(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables).cast(schema) if tables else schema.empty_table()


def load_table(url: str, columns: Optional[list[str]] = None) -> pa.Table:
    """All documents of a dataset as one pyarrow Table of DOCUMENT_SCHEMA, or of just `columns` (only
    those are read from Parquet; from the docarray shards when the run wrote no Parquet)."""
    schema = DOCUMENT_SCHEMA if columns is None else pa.schema([DOCUMENT_SCHEMA.field(c) for c in columns])

    def read(manifest):
        if manifest["shards"][folder_of("parquet")]:
            return _table(read_parquet_shards(url, manifest["shards"][folder_of("parquet")], columns), schema)
        return docs_to_table(_read_docs(url, manifest["shards"][folder_of("docarray")])).select(schema.names)
    return read_snapshot(url, read)


def dead_letters_of(url: str, manifest: dict) -> pa.Table:
    """The dead letters a manifest of the dataset lists, as one pyarrow Table of DEAD_LETTER_SCHEMA."""
    return _table(read_parquet_shards(url, manifest["shards"][DEAD_LETTERS.folder]), DEAD_LETTER_SCHEMA)


def load_dead_letters(url: str) -> pa.Table:
    """All dead letters of a dataset as one pyarrow Table of DEAD_LETTER_SCHEMA."""
    return read_snapshot(url, lambda m: dead_letters_of(url, m))


def load_docs(url: str) -> DocList[TrainingDoc]:
    """All documents of a dataset as one DocList[TrainingDoc] (from the docarray shards when written)."""
    def read(manifest):
        if manifest["shards"][folder_of("docarray")]:
            return _read_docs(url, manifest["shards"][folder_of("docarray")])
        return table_to_docs(_table(read_parquet_shards(url, manifest["shards"][folder_of("parquet")]), DOCUMENT_SCHEMA))
    return read_snapshot(url, read)
