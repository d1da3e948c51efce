"""Read a prepared dataset back, from any fsspec URL, using its manifest."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
from docarray import DocList

from schemas.docarray_docs import TrainingDoc, docs_from_bytes, docs_to_table, table_to_docs
from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA
from transforms.commit import MANIFEST, SUCCESS
from transforms.storage import filesystem, join_url


def load_manifest(url: str) -> dict:
    """The manifest of a complete dataset; FileNotFoundError when the dataset is missing or incomplete."""
    fs, path = filesystem(url)
    if not fs.exists(join_url(path, SUCCESS)):
        raise FileNotFoundError(f"{url} holds no complete dataset (no {SUCCESS} marker).")
    with fs.open(join_url(path, MANIFEST), "rb") as handle:
        return json.load(handle)


def _read_shards(url: str, kind: str, schema: pa.Schema) -> pa.Table:
    manifest = load_manifest(url)
    fs, path = filesystem(url)
    tables = []
    for shard in manifest["shards"][kind]:
        with fs.open(join_url(path, shard["path"]), "rb") as handle:
            tables.append(pq.read_table(handle))
    return pa.concat_tables(tables).cast(schema) if tables else schema.empty_table()


def load_table(url: str) -> pa.Table:
    """All documents of a dataset as one pyarrow Table of DOCUMENT_SCHEMA (from the docarray shards when
    the run wrote no Parquet)."""
    if not load_manifest(url)["shards"]["documents"]:
        return docs_to_table(load_docs(url))
    return _read_shards(url, "documents", DOCUMENT_SCHEMA)


def load_dead_letters(url: str) -> pa.Table:
    """All dead letters of a dataset as one pyarrow Table of DEAD_LETTER_SCHEMA."""
    return _read_shards(url, "dead_letters", DEAD_LETTER_SCHEMA)


def load_docs(url: str) -> DocList[TrainingDoc]:
    """All documents of a dataset as one DocList[TrainingDoc] (from the docarray shards when written)."""
    manifest = load_manifest(url)
    shards = manifest["shards"].get("docarray") or []
    if not shards:
        return table_to_docs(_read_shards(url, "documents", DOCUMENT_SCHEMA))
    fs, path = filesystem(url)
    docs = DocList[TrainingDoc]()
    for shard in shards:
        with fs.open(join_url(path, shard["path"]), "rb") as handle:
            docs.extend(docs_from_bytes(handle.read()))
    return docs
