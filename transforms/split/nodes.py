"""The graph a split is made from: documents linked to their content, to their near-duplicate cluster and,
where the split keeps labels whole, to their label (plain Arrow and numpy, no Beam).

Nodes are uint64: a piece of content is the hash of its modality, text and media address (combined_hashes
of the three, as transforms/document_keys.py hashes them: the loaded image bytes, or the point cloud, else
the URI; so the same photo under two URIs is one piece of content); a label is a salted hash of the label;
a near-duplicate cluster is a salted hash of its `duplicate_group` (the id its members share). A document is
not a node of its own: it joins its content (both chunks' for a two-chunk document), its cluster and, where
labels are kept whole, its label, by edges from its primary node (its content, or its first chunk's). Two
documents end up in one group exactly when a chain of shared content, clusters or labels joins them.

A one-piece document's id already holds its content's hash: the id is its key in hex, and the key is that
hash with the label's and the score's hashes folded in after it (document_keys), so `document_nodes` reads
the key back and transforms.hashing.unfolded_hashes takes label and score out again, without hashing the
text or the bytes a second time. Chunks' content is hashed from the chunks.
"""
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.document_keys import media_addresses
from transforms.hashing import NULL_HASH, category_hashes, column_hashes, combined_hashes, unfolded_hashes

_LABEL_SALT = np.uint64(0x1ABE1ED0C5)
_DUPLICATE_SALT = np.uint64(0xD0B1E6C1A5)
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


def keeps_labels_whole(layout: str, split_by: str) -> bool:
    """Whether a label's documents must share a split: query-document pairs always (a query with its
    documents), labeled rows unless split by document."""
    return layout == "pairs" or (layout == "labeled" and split_by == "label")


def document_nodes(ids: pa.Array) -> np.ndarray:
    """Document ids ('<16 hex digits>' or '<16 hex digits>-k') -> (n,) uint64 keys."""
    digits = pc.utf8_slice_codeunits(_array(ids), 0, 16).cast(pa.binary())
    _, offsets, data = digits.buffers()
    start = np.frombuffer(offsets, dtype=np.int32, count=1, offset=digits.offset * 4)[0]
    nibbles = _HEX[np.frombuffer(data, dtype=np.uint8)[start:start + 16 * len(digits)]].reshape(-1, 16)
    if nibbles.size and nibbles.max() > 15:
        raise ValueError("a document id does not start with 16 lowercase hex digits")
    keys = np.zeros(len(digits), dtype=np.uint64)
    for column in range(16):
        keys = (keys << np.uint64(4)) | nibbles[:, column].astype(np.uint64)
    return keys


def content_nodes(modality: pa.Array, text: pa.Array, uri: pa.Array, blob: pa.Array, cloud: pa.Array) -> np.ndarray:
    """Content columns of n documents or chunks -> (n,) uint64 content nodes: the hash of modality, text and
    media address (the blob, else the point cloud, else the uri)."""
    address = media_addresses(_array(uri), _array(blob), _array(cloud))
    return combined_hashes([category_hashes(_array(modality)), column_hashes(_array(text)), column_hashes(address)])


def flat_content_nodes(documents: pa.Table, labels: np.ndarray) -> np.ndarray:
    """One-piece documents (n rows of DOCUMENT_SCHEMA, as the group stage gives them) and their (n,)
    label_hashes -> (n,) their content_nodes, read back from their ids (their keys: the content's hash
    with the label's and score's folded in after it)."""
    label_keys = labels.copy()
    label_keys[np.asarray(_array(documents.column("label")).is_null())] = NULL_HASH
    scores = column_hashes(_array(documents.column("score")))
    return unfolded_hashes(document_nodes(documents.column("id")), [label_keys, scores])


def label_hashes(labels: pa.Array) -> np.ndarray:
    """(n,) labels -> (n,) uint64: each label's column_hashes value (each distinct label hashed once), 0 where
    there is none."""
    labels = _array(labels)
    hashes = category_hashes(labels)
    if labels.null_count:
        hashes[np.asarray(labels.is_null())] = 0
    return hashes


def label_nodes(hashes: np.ndarray) -> np.ndarray:
    """(n,) label_hashes of labels (none null) -> (n,) uint64 label nodes."""
    return combined_hashes([np.full(len(hashes), _LABEL_SALT), hashes])


def duplicate_nodes(groups: pa.Array) -> np.ndarray:
    """(n,) duplicate_group values (none null) -> (n,) uint64 near-duplicate cluster nodes."""
    return combined_hashes([np.full(len(groups), _DUPLICATE_SALT), column_hashes(_array(groups))])


def document_graph(documents: pa.Table, keep_labels_whole: bool,
                   labels: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A table of DOCUMENT_SCHEMA (n rows) -> (primary, owner, v): each document's primary node (n,) uint64,
    the content node of the document or of its first chunk; and the edges, from the primary node of
    document owner (m,) int64 to node v (m,) uint64 (repeats possible), that join nodes through documents:
    to its other chunks' content, to its near-duplicate cluster (where `duplicate_group` is set) and, when
    keep_labels_whole, to its label. `labels`: the table's (n,) label_hashes, when the caller has them. A
    document's group is its primary node's component (the node itself when no edge has it)."""
    chunks = _array(documents.column("chunks"))
    flat = np.asarray(chunks.is_null())
    primary = np.empty(documents.num_rows, dtype=np.uint64)
    owners, vs = [], []
    labels = label_hashes(documents.column("label")) if labels is None else labels
    if flat.all():
        primary[:] = flat_content_nodes(documents, labels)
    elif flat.any():
        primary[flat] = flat_content_nodes(documents.filter(pa.array(flat)), labels[flat])
    if not flat.all():
        lengths = np.asarray(pc.fill_null(pc.list_value_length(chunks), 0))
        values = pc.list_flatten(chunks)
        nodes = content_nodes(*(values.field(name) for name in ("modality", "text", "uri", "blob", "point_cloud")))
        firsts = np.cumsum(lengths) - lengths
        chunked = np.flatnonzero(~flat)
        primary[chunked] = nodes[firsts[chunked]]
        owners.append(np.repeat(np.arange(documents.num_rows), lengths))
        vs.append(nodes)
    duplicates = _array(documents.column("duplicate_group"))
    if duplicates.null_count < len(duplicates):
        member = np.asarray(duplicates.is_valid())
        owners.append(np.flatnonzero(member))
        vs.append(duplicate_nodes(duplicates.filter(pa.array(member))))
    if keep_labels_whole:
        labelled = np.asarray(_array(documents.column("label")).is_valid())
        owners.append(np.flatnonzero(labelled))
        vs.append(label_nodes(labels[labelled]))
    if not owners:
        return primary, np.zeros(0, np.int64), np.zeros(0, np.uint64)
    owner, v = np.concatenate(owners).astype(np.int64), np.concatenate(vs)
    keep = primary[owner] != v  # a first chunk is its own document's primary node
    return primary, owner[keep], v[keep]


def _array(column) -> pa.Array:
    """A column as one Array (combine_chunks copies even a single chunk: that one is taken as it is)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
