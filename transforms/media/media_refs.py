"""Which file each loaded medium comes from, named so that two runs can tell the same file: the match keys
of the media a run would load for its candidate documents, and of the media a finished dataset holds.

A document's media targets are the document itself when it has no chunks, else each of its chunks (as
LoadMedia reads them). A match key names a medium by its location, the URI resolved against the run's media
root (uris.resolve): the same bytes decoded with the same options give the same fields, whatever the name
(a mesh's points are seeded by its bytes: meshes.mesh_seed). URIs with credentials are never matched:
datasets keep them redacted.
"""
import json
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.options import MediaOptions
from transforms.media.fetch import robots_refusal
from transforms.media.load_media import wanted
from transforms.uris import has_credentials, resolve

MEDIA_FIELDS = ("blob", "mime_type", "width", "height", "point_cloud", "point_cloud_from")
_LOADED_WHEN = ("modality", "uri", "width", "point_cloud_from")  # what tells a dataset's loaded media
# The Parquet columns of a dataset's documents that previous_keys reads (no blob, no point cloud).
PREVIOUS_KEY_COLUMNS = ["source_file", *_LOADED_WHEN, *(f"chunks.list.element.{name}" for name in _LOADED_WHEN)]


def match_key(kind: str, location: str) -> Optional[str]:
    """A media target's kind and resolved location -> its match key; None when it has credentials."""
    if has_credentials(location):
        return None
    return json.dumps([kind, location])


def targets(docs, fields: tuple = ("modality", "uri")) -> pa.Table:
    """A batch or table of documents -> one row per media target: `row` (the document's position), `slot`
    (-1: the document, i: its chunk i) and the target's `fields` (columns of a document and of a chunk)."""
    chunks = _array(docs.column("chunks"))
    plain = pa.array(np.flatnonzero(np.asarray(chunks.is_null())))
    columns = {"row": plain, "slot": pa.array(np.full(len(plain), -1, dtype=np.int64))}
    columns.update({name: _array(docs.column(name)).take(plain) for name in fields})
    documents = pa.table(columns)
    if chunks.null_count == len(chunks):
        return documents
    values = pc.list_flatten(chunks)
    parents = np.asarray(pc.list_parent_indices(chunks))
    lengths = np.asarray(pc.fill_null(pc.list_value_length(chunks), 0))
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    columns = {"row": pa.array(parents), "slot": pa.array(np.arange(len(values)) - starts[parents])}
    columns.update({name: values.field(name) for name in fields})
    return pa.concat_tables([documents, pa.table(columns).cast(documents.schema)])


def candidate_references(docs, options: MediaOptions, media_root: Optional[str]) -> tuple[pa.Table, np.ndarray]:
    """Candidate documents -> (the references to media this run loads for them: `row`, `slot`, `key`; (n,)
    bool: the documents that have at least one and whose every one has a key).

    The rules are LoadMedia's: an image that already carries its blob is verified by LoadMedia (so its
    document is not reusable), a mesh that carries its points is not loaded again; a remote file its host's
    robots.txt now forbids is not reused (LoadMedia makes it a robots_disallowed dead letter)."""
    found = targets(docs, ("modality", "uri", "blob", "point_cloud"))
    references = []  # (row, slot, key)
    blocked = np.zeros(docs.num_rows, dtype=bool)
    with_blob = np.asarray(found.column("blob").is_valid())
    with_cloud = np.asarray(found.column("point_cloud").is_valid())
    columns = (found.column(name).to_pylist() for name in ("row", "slot", "modality", "uri"))
    for i, (row, slot, kind, uri) in enumerate(zip(*columns)):
        if kind == "image" and with_blob[i] and options.convert_to_blob:
            blocked[row] = True
        elif kind == "mesh" and with_cloud[i]:
            continue
        elif uri and wanted(kind, location := resolve(uri, media_root), options):
            key = match_key(kind, location)
            if key is None or robots_refusal(location, options) is not None:  # LoadMedia says why
                blocked[row] = True
            else:
                references.append((row, slot, key))
    rows, slots, keys = zip(*references) if references else ((), (), ())
    referenced = np.zeros(docs.num_rows, dtype=bool)
    referenced[list(rows)] = True
    table = pa.table({"row": pa.array(rows, pa.int64()), "slot": pa.array(slots, pa.int64()),
                      "key": pa.array(keys, pa.string())})
    return table, referenced & ~blocked


def previous_keys(docs, media_root: Optional[str], excluded_sources: frozenset = frozenset()) -> pa.Table:
    """Documents of a finished dataset (columns PREVIOUS_KEY_COLUMNS) -> their loaded media: `key`, and the
    `row` and `slot` of the first target of each key. An image is loaded when it has a width, a mesh when it
    says where its points came from (LoadMedia sets those with the media). Documents from
    `excluded_sources` (the dataset's .docs inputs, whose media did not come from their URIs) are left out."""
    found = targets(docs, _LOADED_WHEN)
    sources = _array(docs.column("source_file")).take(found.column("row")).to_pylist()
    kinds = found.column("modality")
    loaded = pc.or_(pc.and_(pc.equal(kinds, "image"), found.column("width").is_valid()),
                    pc.and_(pc.equal(kinds, "mesh"), found.column("point_cloud_from").is_valid()))
    keep, keys = [], []  # positions in `found`, their match keys
    for i, (kind, uri, is_loaded) in enumerate(zip(kinds.to_pylist(), found.column("uri").to_pylist(),
                                                   np.asarray(pc.fill_null(loaded, False)))):
        if is_loaded and uri and sources[i] not in excluded_sources:
            key = match_key(kind, resolve(uri, media_root))
            if key is not None:
                keep.append(i)
                keys.append(key)
    located = found.select(["row", "slot"]).take(pa.array(keep, pa.int64()))
    located = located.add_column(0, "key", pa.array(keys, pa.string()))
    unique = pc.index_in(pc.unique(located.column("key")), value_set=located.column("key").combine_chunks())
    return located.take(unique)


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
