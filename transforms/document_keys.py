"""What makes two candidate documents the same: their content columns, hashed into `_key` and compared
exactly where keys repeat.

A document's (or chunk's) media is named by its address: what the media stage loaded, its bytes (`blob`)
or its point cloud (seeded by the mesh file's bytes: meshes.mesh_seed), else its `uri`. So the same photo,
or the same mesh file, under two URLs is one piece of content, and a document's key changes once its media
is loaded (LoadMedia computes it again)."""
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.documents import KEY
from transforms.hashing import category_hashes, column_hashes, combined_hashes, folded_hashes

_FLAT = ("modality", "text", "uri", "label", "score")  # "uri" stands for the media address (see above)
_CHUNK = ("modality", "text", "uri")


def chunk_slots(docs) -> list[tuple[np.ndarray, list[pa.Array]]]:
    """Candidate batch or table -> per chunk position i: ((n,) bool, the documents that have a chunk i;
    chunk i's content columns, null where absent)."""
    chunks = _array(docs.column("chunks"))
    if chunks.null_count == len(chunks):
        return []
    lengths = np.asarray(pc.fill_null(pc.list_value_length(chunks), 0))
    values = pc.list_flatten(chunks)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    slots = []
    for i in range(int(lengths.max(initial=0))):
        present = lengths > i
        picked = values.take(pa.array(np.where(present, starts + i, 0), mask=~present))
        slots.append((present, [_field(picked, name) for name in _CHUNK]))
    return slots


def media_addresses(uri: pa.Array, blob: pa.Array, cloud: pa.Array) -> pa.Array:
    """(n,) uris, blobs and point clouds -> (n,) large_binary: the blob where there is one, else the point
    cloud's float32 bytes, else the uri's UTF-8 bytes."""
    address = _array(uri).cast(pa.large_binary())
    for loaded in (cloud_bytes(_array(cloud)), _array(blob).cast(pa.large_binary())):
        if loaded.null_count < len(loaded):
            address = pc.if_else(loaded.is_valid(), loaded, address)
    return address


def cloud_bytes(clouds: pa.Array) -> pa.Array:
    """(n,) point clouds (lists of float32 triples) -> (n,) large_binary: each cloud's float32 bytes (x, y, z
    of each point in turn), null where there is none."""
    if clouds.null_count == len(clouds):
        return pa.nulls(len(clouds), pa.large_binary())
    values = np.asarray(pc.list_flatten(pc.list_flatten(clouds)), dtype=np.float32)
    sizes = np.asarray(pc.fill_null(pc.list_value_length(clouds), 0), dtype=np.int64) * 12
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    present = clouds.is_valid()
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(clouds), [
        present.buffers()[1] if clouds.null_count else None, pa.py_buffer(offsets), pa.py_buffer(values.tobytes())],
        null_count=clouds.null_count, offset=present.offset if clouds.null_count else 0)


def content_columns(docs) -> list[pa.Array]:
    """Candidate batch or table -> the columns that define a document's content, chunk fields included
    (chunk i's fields for each chunk position i); media by their address."""
    return [_field(docs, name) for name in _FLAT] + [c for _, columns in chunk_slots(docs) for c in columns]


def _field(docs, name: str) -> pa.Array:
    """A content column of a batch, table or chunk struct array; "uri" gives the media address."""
    column = docs.field if isinstance(docs, pa.StructArray) else docs.column
    if name == "uri":
        return media_addresses(column("uri"), column("blob"), column("point_cloud"))
    return _array(column(name))


def document_keys(docs, known: Optional[dict] = None) -> np.ndarray:
    """(n,) uint64 content hash of each candidate document, from its own columns and chunks only (never
    from its neighbours in the batch); `known` maps content column names to their (n,) column_hashes when
    the caller already has them (the same values, computed once)."""
    known = dict(known or {})
    if "modality" not in known:  # a handful of distinct values: each hashed once
        known["modality"] = category_hashes(_array(docs.column("modality")))
    keys = combined_hashes([known[name] if name in known else column_hashes(_field(docs, name))
                            for name in _FLAT])
    for present, columns in chunk_slots(docs):
        rows = np.flatnonzero(present)
        keys[rows] = folded_hashes(keys[rows], [column_hashes(c.take(pa.array(rows))) for c in columns])
    return keys


def sort_order(docs) -> np.ndarray:
    """(n,) indices that order documents by (key, source_file, source_row): the output order."""
    files = pc.dictionary_encode(_array(docs.column("source_file")).fill_null(""))
    rank = np.empty(len(files.dictionary), dtype=np.int64)
    rank[np.asarray(pc.sort_indices(files.dictionary))] = np.arange(len(files.dictionary))
    file_rank = rank[files.indices.to_numpy(zero_copy_only=False)]
    rows = np.asarray(pc.fill_null(_array(docs.column("source_row")), -1))
    return np.lexsort((rows, file_rank, _array(docs.column(KEY)).to_numpy()))


def repeats(docs, order: np.ndarray) -> np.ndarray:
    """(n,) bool, by position in `docs`: True where a document, taken in `order`, has the same key and
    exactly the same content as the one before it."""
    keys = _array(docs.column(KEY)).to_numpy()[order]
    later_pos = np.flatnonzero(keys[1:] == keys[:-1]) + 1
    mask = np.zeros(len(order), dtype=bool)
    if not later_pos.size:
        return mask
    later, earlier = pa.array(order[later_pos]), pa.array(order[later_pos - 1])
    same = np.ones(later_pos.size, dtype=bool)
    for column in content_columns(docs):
        a, b = column.take(later), column.take(earlier)
        equal = pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(a.is_null(), b.is_null()))
        same &= np.asarray(equal)
    mask[order[later_pos][same]] = True
    return mask


def with_loaded_media(docs) -> np.ndarray:
    """(n,) bool: documents that carry loaded media, image bytes or a point cloud, their own or a chunk's
    (such repeats are removed in every layout: the same photo or mesh file under two URIs in one label is
    one document)."""
    has = np.asarray(pc.or_(_array(docs.column("blob")).is_valid(), _array(docs.column("point_cloud")).is_valid()))
    chunks = _array(docs.column("chunks"))
    if chunks.null_count < len(chunks):
        lengths = np.asarray(pc.fill_null(pc.list_value_length(chunks), 0))
        values = pc.list_flatten(chunks)
        loaded = np.asarray(pc.or_(values.field("blob").is_valid(), values.field("point_cloud").is_valid())).astype(np.int64)
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        has |= np.add.reduceat(np.r_[loaded, 0], starts)[:len(lengths)] * (lengths > 0) > 0
    return has


def hex_ids(keys: np.ndarray) -> pa.Array:
    """(n,) uint64 keys -> string array of 16 lowercase hex digits each."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    big_endian = keys.astype(">u8").view(np.uint8).reshape(-1, 8)
    text = np.empty((len(keys), 16), dtype=np.uint8)
    text[:, 0::2], text[:, 1::2] = digits[big_endian >> 4], digits[big_endian & 15]
    offsets = pa.py_buffer(np.arange(0, 16 * (len(keys) + 1), 16, dtype=np.int32).tobytes())
    return pa.Array.from_buffers(pa.string(), len(keys), [None, offsets, pa.py_buffer(text.tobytes())])


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
