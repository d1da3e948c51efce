"""The docarray format: `docarray/*.docs` shards, a DocList in docarray's protobuf-array protocol, uncompressed.

A shard is exactly what `DocList[TrainingDoc].to_protobuf().SerializeToString(deterministic=True)` gives
(one DocProto per document, its fields in a map of NodeProtos sorted by key), so docarray opens it with
`DocList[AnyDocClass].load_binary(path)` and its defaults. The bytes are assembled over whole Arrow columns
instead of a message per document: every protobuf field is a tag, a varint length and its bytes, so a
message is a list of pieces (constant bytes, or an array of bytes per row) and their length per row, and
`binary_join_element_wise` concatenates the pieces of all rows at once. A DocListProto is a repeated field,
so the messages of successive batches, written one after the other, are the message of the whole shard.
"""
from typing import Iterator, NamedTuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.documents import LABEL_TAG, SCORE_TAG
from transforms.write.shard_writer import ShardWriter

ROWS_PER_PIECE = 16_384  # documents encoded at once: temporaries of a few MB (larger ones cost page faults)
BYTES = pa.large_binary()
_EMPTY = pa.scalar(b"", BYTES)
_INT32 = (-(2**31), 2**31)
_DTYPE = np.dtype(np.float32).str.encode()  # b'<f4', what docarray writes for a float32 tensor
# Field tags (field number << 3 | wire type) of docarray.proto's messages.
LIST_DOCS = b"\x0a"  # DocListProto.docs; also DocProto.data, DictOfAnyProto.data, NdArrayProto.dense
MAP_KEY, MAP_VALUE = b"\x0a", b"\x12"
TEXT, INTEGER, FLOAT, BLOB, NDARRAY, DOC_ARRAY, DICT = b"\x0a", b"\x10", b"\x19", b"\x2a", b"\x32", b"\x42", b"\x62"
TYPE = b"\x6a"  # NodeProto.type
DENSE_BUFFER, DENSE_SHAPE, DENSE_DTYPE = b"\x0a", b"\x12", b"\x1a"


class _Bytes(NamedTuple):
    """Bytes per row, not yet joined: pieces (constant bytes or large_binary arrays) and the length per row."""

    pieces: tuple
    length: Union[int, np.ndarray]


def _offsets(array: pa.Array) -> np.ndarray:
    """The value offsets of a large_binary array (its own slice of them)."""
    return np.frombuffer(array.buffers()[1], np.int64, len(array) + 1, array.offset * 8)


def _fixed(data: np.ndarray, sizes: np.ndarray) -> pa.Array:
    """A flat buffer cut into rows of `sizes` bytes -> large_binary array."""
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return pa.LargeBinaryArray.from_buffers(BYTES, len(sizes), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _const(data: bytes) -> _Bytes:
    """The same bytes in every row."""
    return _Bytes((data,), len(data))


def _values(array: pa.Array) -> _Bytes:
    """A large_binary array without nulls -> its values as a piece."""
    return _Bytes((array,), np.diff(_offsets(array)))


def _cat(*parts: _Bytes) -> _Bytes:
    """Messages -> their concatenation, row by row."""
    return _Bytes(sum((p.pieces for p in parts), ()), sum(p.length for p in parts))


_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], np.uint64)


def _varints(values: np.ndarray) -> pa.Array:
    """Unsigned integers -> large_binary array of their protobuf varints."""
    values = values.astype(np.uint64)
    if not len(values) or values.max() < 128:
        return _fixed(values.astype(np.uint8), np.ones(len(values), np.int64))
    sizes = np.searchsorted(_VARINT_LIMITS, values, side="right") + 1
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    data = np.empty(offsets[-1], np.uint8)
    for k in range(int(sizes.max())):
        rows = np.flatnonzero(sizes > k)
        more = (sizes[rows] > k + 1).astype(np.uint8) << 7
        data[offsets[rows] + k] = ((values[rows] >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8) | more
    return pa.LargeBinaryArray.from_buffers(BYTES, len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _varint(value: int) -> bytes:
    """One unsigned integer -> its protobuf varint."""
    return _varints(np.array([value]))[0].as_py()


def _field(tag: bytes, message: _Bytes) -> _Bytes:
    """A length-delimited field: tag, varint length, the message."""
    if isinstance(message.length, int):
        return _cat(_const(tag + _varint(message.length)), message)
    return _cat(_const(tag), _values(_varints(message.length)), message)


def _fixed_width(piece, rows: int):
    """A piece whose rows all have the same length -> its bytes as a (width,) or (rows, width) uint8 array;
    None for a piece of varying lengths."""
    if isinstance(piece, bytes):
        return np.frombuffer(piece, np.uint8)
    offsets = _offsets(piece)
    width = int(offsets[1] - offsets[0]) if rows else 0
    if offsets[-1] - offsets[0] != width * rows or not (np.diff(offsets) == width).all():
        return None
    if width == 0:
        return np.empty((rows, 0), np.uint8)
    return np.frombuffer(piece.buffers()[2], np.uint8, width * rows, offsets[0]).reshape(rows, width)


def _matrix(run: list, rows: int) -> pa.Array:
    """Consecutive fixed-width pieces -> one large_binary array, each row their bytes side by side."""
    widths = [piece.shape[-1] for piece in run]
    starts = np.cumsum([0] + widths)
    row = np.concatenate([piece if piece.ndim == 1 else np.zeros(piece.shape[1], np.uint8) for piece in run])
    out = np.tile(row, (rows, 1))
    for piece, start, width in zip(run, starts, widths):
        if piece.ndim == 2:
            out[:, start:start + width] = piece
    return _fixed(out, np.full(rows, len(row)))


def _join(message: _Bytes, rows: int) -> pa.Array:
    """The pieces of each row concatenated -> large_binary array of `rows` rows. Consecutive pieces of
    one width per row (constants, one-byte varints, equal ids) are first laid side by side with numpy."""
    args, run = [], []
    for piece in message.pieces:
        fixed = _fixed_width(piece, rows)
        if fixed is not None:
            run.append(fixed)
            continue
        if run:
            args.append(_matrix(run, rows))
            run = []
        args.append(piece)
    if run:
        args.append(_matrix(run, rows))
    return args[0] if len(args) == 1 else pc.binary_join_element_wise(*args, _EMPTY)


def _where(valid: np.ndarray, message: _Bytes, rows: int) -> _Bytes:
    """The message in rows where `valid` is true, nothing (zero bytes) in the others."""
    if valid.all():
        return message
    if not valid.any():
        return _const(b"")
    return _values(pc.if_else(pa.array(valid), _join(message, rows), _EMPTY))


def _optional(column: pa.Array, encode) -> _Bytes:
    """encode(column) in rows where the column is not null, nothing (an empty node or entry) in the others."""
    if column.null_count == len(column):
        return _const(b"")
    return _where(column.is_valid().to_numpy(zero_copy_only=False), encode(column), len(column))


def _text(column: pa.Array) -> _Bytes:
    """Strings -> NodeProto.text nodes."""
    return _field(TEXT, _values(column.fill_null("").cast(BYTES)))


def _integer(column: pa.Array) -> _Bytes:
    """int32 NodeProto.integer: a varint of the value, negative ones as 64-bit two's complement."""
    values = column.fill_null(0).to_numpy().astype(np.int64)
    if len(values) and (values.min() < _INT32[0] or values.max() >= _INT32[1]):
        raise ValueError(f"integer field out of int32 range: {values.min()}..{values.max()}")
    return _cat(_const(INTEGER), _values(_varints(values.view(np.uint64))))


def _float(column: pa.Array) -> _Bytes:
    """Doubles -> NodeProto.float nodes (8 little-endian bytes)."""
    values = column.fill_null(0).to_numpy().astype("<f8")
    return _cat(_const(FLOAT), _values(_fixed(values, np.full(len(values), 8))))


def _tensor(column: pa.Array) -> _Bytes:
    """Point clouds -> NdArrayProto nodes (dense float32 (N, 3)) typed 'ndarray'."""
    points = pc.list_value_length(column).fill_null(0).to_numpy().astype(np.int64)
    floats = column.flatten().flatten().to_numpy(zero_copy_only=False).astype("<f4")
    buffer = _field(DENSE_BUFFER, _values(_fixed(floats, points * 12)))
    shape = _field(DENSE_SHAPE, _cat(_values(_varints(points)), _const(_varint(3))))  # packed (N, 3)
    dense = _cat(_where(points > 0, buffer, len(points)), shape, _field(DENSE_DTYPE, _const(_DTYPE)))
    return _cat(_field(NDARRAY, _field(LIST_DOCS, dense)), _field(TYPE, _const(b"ndarray")))


def _entry(key: str, node: _Bytes) -> _Bytes:
    """One entry of a map<string, NodeProto>."""
    return _field(LIST_DOCS, _cat(_field(MAP_KEY, _const(key.encode())), _field(MAP_VALUE, node)))


def _map(nodes: dict) -> _Bytes:
    """{key: node} -> a map<string, NodeProto>, entries sorted by key as deterministic serialization does."""
    return _cat(*(_entry(key, nodes[key]) for key in sorted(nodes)))


_CONTENT = {"text": _text, "uri": _text, "mime_type": _text, "width": _integer, "height": _integer,
            "blob": lambda c: _field(BLOB, _values(c.fill_null(b"").cast(BYTES))), "tensor": _tensor,
            "point_cloud_from": _text}


def _content(columns: dict, ids: pa.Array) -> dict:
    """Columns of documents or chunks, their ids -> {field: node} of their content (null -> empty node)."""
    nodes = {"id": _cat(_field(TEXT, _values(ids.cast(BYTES))), _field(TYPE, _const(b"id"))),
             "modality": _text(columns["modality"])}
    for name, encode in _CONTENT.items():
        nodes[name] = _optional(columns["point_cloud" if name == "tensor" else name], encode)
    return nodes


def _chunk_lists(column: pa.Array, ids: pa.Array) -> pa.Array:
    """list<chunk> -> large_binary array of each row's chunks as DocListProto bytes (ids '<doc id>/<index>')."""
    counts = pc.list_value_length(column).fill_null(0).to_numpy().astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    chunks = column.flatten()
    parent = np.repeat(np.arange(len(ids)), counts)
    position = pa.array(np.arange(starts[-1]) - starts[:-1][parent]).cast(pa.string())
    chunk_ids = pc.binary_join_element_wise(ids.take(parent), position, "/")
    columns = dict(zip([field.name for field in chunks.type], chunks.flatten()))
    docs = _join(_field(LIST_DOCS, _map(_content(columns, chunk_ids))), len(chunk_ids))
    # A row's chunks are consecutive: its DocListProto is their bytes, cut at the first chunk of each row.
    cuts = pa.py_buffer(_offsets(docs)[starts])
    return pa.LargeBinaryArray.from_buffers(BYTES, len(ids), [None, cuts, docs.buffers()[2]])


def _documents(batch: pa.RecordBatch) -> pa.Array:
    """DOCUMENT_SCHEMA rows -> large_binary array of their DocListProto entries (tag, length, DocProto)."""
    columns = dict(zip(batch.schema.names, batch.columns))
    ids = columns["id"]
    nodes = _content(columns, ids)
    nodes["tags"] = _field(DICT, _cat(_optional(columns["label"], lambda c: _entry(LABEL_TAG, _text(c))),
                                      _optional(columns["score"], lambda c: _entry(SCORE_TAG, _float(c)))))
    nodes["chunks"] = _optional(columns["chunks"], lambda c: _field(DOC_ARRAY, _values(_chunk_lists(c, ids))))
    nodes["source_file"] = _optional(columns["source_file"], _text)
    nodes["source_row"] = _optional(columns["source_row"], _integer)
    nodes["split"] = _optional(columns["split"], _text)
    return _join(_field(LIST_DOCS, _map(nodes)), batch.num_rows)


def encode_doclist(batch: Union[pa.RecordBatch, pa.Table], rows_per_piece: int = ROWS_PER_PIECE) -> Iterator[pa.Buffer]:
    """DOCUMENT_SCHEMA rows -> their serialized DocListProto, in pieces of at most `rows_per_piece` documents
    (the pieces concatenated are one DocListProto, the same bytes as with deterministic serialization)."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    for part in table.to_batches(max_chunksize=rows_per_piece):
        if part.num_rows:
            docs = _documents(part)
            offsets = _offsets(docs)
            yield docs.buffers()[2][offsets[0]:offsets[-1]]


class DocArrayShards(ShardWriter):
    """Documents as an uncompressed DocList protobuf (the `.docs` shard format), streamed batch by batch."""

    name = "docarray"
    folder = "docarray"
    suffix = ".docs"

    def __init__(self, url: str):
        super().__init__(url)
        self._handle = self._open()
        self._size = 0

    def _write(self, batch: Union[pa.RecordBatch, pa.Table]) -> None:
        for data in encode_doclist(batch):
            self._handle.write(data)
            self._size += data.size

    def _close(self) -> int:
        self._handle.close()
        return self._size
