"""Beam coders for what flows between stages: Arrow record batches and tables, and a step's tagged `Output`s.

Arrow IPC bytes on the wire, and size estimates that do not serialize (Beam samples element sizes, and
its default pickling coder would encode every batch to measure it).
"""
import pickle
from typing import Any, NamedTuple, Tuple

import apache_beam as beam
import pyarrow as pa


class _ArrowCoder(beam.coders.Coder):
    """Arrow data (a RecordBatch or a Table) <-> Arrow IPC stream bytes; its size is its buffers' nbytes."""

    def encode(self, data) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write(data)
        return sink.getvalue().to_pybytes()

    def is_deterministic(self) -> bool:
        return True

    def estimate_size(self, data) -> int:
        return data.nbytes


class RecordBatchCoder(_ArrowCoder):
    """pa.RecordBatch <-> Arrow IPC stream bytes."""

    def decode(self, data: bytes) -> pa.RecordBatch:
        return pa.ipc.open_stream(data).read_next_batch()

    def to_type_hint(self):
        return pa.RecordBatch


_BATCHES = RecordBatchCoder()


class TableCoder(_ArrowCoder):
    """pa.Table <-> Arrow IPC stream bytes. Beam estimates the size of elements it passes on; without this
    coder a (bucket, Table) element was pickled whole to measure it (about 2 s of CPU per 2 million documents)."""

    def decode(self, data: bytes) -> pa.Table:
        return pa.ipc.open_stream(data).read_all()

    def to_type_hint(self):
        return pa.Table


BUCKET_TABLE = Tuple[int, pa.Table]  # (write bucket, its documents): what flows from the group stage to the writers


def batch_bytes(batch: pa.RecordBatch) -> bytes:
    """A RecordBatch -> Arrow IPC bytes, to send through a shuffle as a plain bytes element.

    Before a GroupByKey, batches travel as bytes: Beam's compiled coders write a bytes element to the data
    channel in one go, while a Python coder (RecordBatchCoder) can be cut by the FnApiRunner's flusher
    thread, and the runner decodes the rest as garbage (see pipelines/prepare/run.py)."""
    return _BATCHES.encode(batch)


def bytes_batch(data: bytes) -> pa.RecordBatch:
    """batch_bytes' inverse."""
    return _BATCHES.decode(data)


class Output(NamedTuple):
    """One output of a step: its kind (transforms.stage.MAIN, DEAD_LETTERS or COUNTS) and the value."""

    kind: str
    value: Any


class OutputCoder(beam.coders.Coder):
    """Output <-> bytes: Arrow IPC for RecordBatches, pickle otherwise; sizes estimated without encoding."""

    _batches = RecordBatchCoder()

    def encode(self, output: Output) -> bytes:
        if isinstance(output.value, pa.RecordBatch):
            return b"A" + output.kind.encode() + b"\0" + self._batches.encode(output.value)
        return b"P" + output.kind.encode() + b"\0" + pickle.dumps(output.value, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, data: bytes) -> Output:
        kind, payload = data[1:].split(b"\0", 1)
        value = self._batches.decode(payload) if data[:1] == b"A" else pickle.loads(payload)
        return Output(kind.decode(), value)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, output: Output) -> int:
        return output.value.nbytes if isinstance(output.value, pa.RecordBatch) else 64

    def to_type_hint(self):
        return Output


beam.coders.registry.register_coder(pa.RecordBatch, RecordBatchCoder)
beam.coders.registry.register_coder(pa.Table, TableCoder)
beam.coders.registry.register_coder(Output, OutputCoder)
