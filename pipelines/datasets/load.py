"""Read a prepared dataset back, from any fsspec URL, using its manifest.

A read is a snapshot: the manifest is read before and after the shards, and the read starts over when a
new run committed in between, so a reader never returns a mix of two runs. Shards are found only through
the manifest (on object stores they live under `versions/RUN/`: see transforms.commit).

docarray, and the format registry that imports it (and pandas), are imported by the functions that use them:
`finetune-etl summary` and `errors` read Parquet only and would spend most of their time importing them.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA, DUPLICATE_SCHEMA
from transforms.storage import MANIFEST, SUCCESS, filesystem, join_url, read_manifest

if TYPE_CHECKING:
    from docarray import DocList

    from schemas.docarray_docs import TrainingDoc

ATTEMPTS = 5
READ_THREADS = 4
DUPLICATES = "duplicates"  # the dataset folder of DUPLICATE_SCHEMA rows; datasets of earlier versions have none
T = TypeVar("T")


class DatasetChanging(RuntimeError):
    """Runs kept committing to the dataset while it was read."""


class UnknownSplit(ValueError):
    """A split the dataset does not have; `names` are the splits it has (empty without --split)."""

    def __init__(self, split: str, names: list[str]):
        super().__init__(f"the dataset has no split {split!r} (its splits: {', '.join(names) or 'none'}).")
        self.split, self.names = split, names


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
    (dotted paths such as chunks.list.element.modality pick nested leaves). Up to READ_THREADS shards are
    read at once: pyarrow decodes without the GIL, and on object stores the requests overlap."""
    fs, path = filesystem(url)

    def read(shard: dict) -> pa.Table:
        with fs.open(join_url(path, shard["path"]), "rb") as handle:
            return pq.ParquetFile(handle).read(columns=columns)
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(read, shards))


def _read_docs(url: str, shards: list) -> DocList[TrainingDoc]:
    from docarray import DocList

    from schemas.docarray_docs import TrainingDoc, docs_from_bytes

    fs, path = filesystem(url)
    docs = DocList[TrainingDoc]()
    for shard in shards:
        with fs.open(join_url(path, shard["path"]), "rb") as handle:
            docs.extend(docs_from_bytes(handle.read()))
    return docs


def _table(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return conformed(pa.concat_tables(tables), schema) if tables else schema.empty_table()


def conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table read from shards -> `schema`: columns (and chunk fields) that datasets of earlier versions
    do not have (`point_cloud_from`, `split`, `duplicate_group`) are added as nulls, then the table is cast."""
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        if field.name == "chunks" and column.type != field.type:
            column = pa.chunked_array([_chunks_with(chunk, field.type) for chunk in column.chunks], field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema) if columns != list(table.columns) else table.cast(schema)


def _chunks_with(chunks: pa.ListArray, list_type: pa.DataType) -> pa.ListArray:
    """A chunks list array -> the same lists with every field of list_type's struct (missing ones null)."""
    values = chunks.values
    fields = [values.field(f.name) if values.type.get_field_index(f.name) >= 0 else pa.nulls(len(values), f.type)
              for f in list_type.value_type]
    rebuilt = pa.StructArray.from_arrays(fields, fields=list(list_type.value_type), mask=values.is_null())
    return pa.ListArray.from_arrays(chunks.offsets, rebuilt, mask=chunks.is_null()).cast(list_type)


def check_split(manifest: dict, split: str) -> None:
    """UnknownSplit when the dataset of the manifest has no split of that name."""
    names = list(manifest.get("splits", {}).get("per_split", {}))
    if split not in names:
        raise UnknownSplit(split, names)


def shards_of(manifest: dict, folder: str, split: Optional[str] = None) -> list:
    """The manifest's shard entries of one dataset folder, or of one split's shards in it; UnknownSplit (a
    ValueError) for a split the dataset does not have."""
    if split is None:
        return manifest["shards"][folder]
    check_split(manifest, split)
    return [shard for shard in manifest["shards"][folder] if shard.get("split") == split]


def load_table(url: str, columns: Optional[list[str]] = None, split: Optional[str] = None) -> pa.Table:
    """All documents of a dataset (or of one split) as one pyarrow Table of DOCUMENT_SCHEMA, or of just
    `columns` (only those are read from Parquet; from the docarray shards when the run wrote no Parquet)."""
    from schemas.docarray_docs import docs_to_table
    from transforms.write.formats import folder_of

    schema = DOCUMENT_SCHEMA if columns is None else pa.schema([DOCUMENT_SCHEMA.field(c) for c in columns])

    def read(manifest):
        if manifest["shards"][folder_of("parquet")]:
            return _table(read_parquet_shards(url, shards_of(manifest, folder_of("parquet"), split), columns), schema)
        return docs_to_table(_read_docs(url, shards_of(manifest, folder_of("docarray"), split))).select(schema.names)
    return read_snapshot(url, read)


def dead_letters_of(url: str, manifest: dict) -> pa.Table:
    """The dead letters a manifest of the dataset lists, as one pyarrow Table of DEAD_LETTER_SCHEMA."""
    from transforms.write.formats import DEAD_LETTERS

    return _table(read_parquet_shards(url, manifest["shards"][DEAD_LETTERS.folder]), DEAD_LETTER_SCHEMA)


def load_dead_letters(url: str) -> pa.Table:
    """All dead letters of a dataset as one pyarrow Table of DEAD_LETTER_SCHEMA."""
    return read_snapshot(url, lambda m: dead_letters_of(url, m))


def duplicates_of(url: str, manifest: dict) -> pa.Table:
    """The duplicates a manifest of the dataset lists (`shards["duplicates"]`), as one pyarrow Table of
    DUPLICATE_SCHEMA; an empty one when the dataset has no duplicates folder."""
    return _table(read_parquet_shards(url, manifest["shards"].get(DUPLICATES, [])), DUPLICATE_SCHEMA)


def load_duplicates(url: str) -> pa.Table:
    """The duplicates of a dataset as one pyarrow Table of DUPLICATE_SCHEMA: exact duplicates removed and the
    documents of near-duplicate clusters, kept_id naming the document kept for each; empty when there are
    none, or when the dataset was written before duplicates were recorded."""
    return read_snapshot(url, lambda m: duplicates_of(url, m))


def load_docs(url: str, split: Optional[str] = None) -> DocList[TrainingDoc]:
    """All documents of a dataset (or of one split) as one DocList[TrainingDoc] (from the docarray shards
    when written)."""
    from schemas.docarray_docs import table_to_docs
    from transforms.write.formats import folder_of

    def read(manifest):
        if manifest["shards"][folder_of("docarray")]:
            return _read_docs(url, shards_of(manifest, folder_of("docarray"), split))
        shards = shards_of(manifest, folder_of("parquet"), split)
        return table_to_docs(_table(read_parquet_shards(url, shards), DOCUMENT_SCHEMA))
    return read_snapshot(url, read)
