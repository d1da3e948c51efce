"""A Beam coder for Arrow RecordBatches: Arrow IPC bytes on the wire, and a size estimate that does not
serialize (Beam samples element sizes, and its default pickling coder would encode every batch to measure it)."""
import apache_beam as beam
import pyarrow as pa


class RecordBatchCoder(beam.coders.Coder):
    """pa.RecordBatch <-> Arrow IPC stream bytes."""

    def encode(self, batch: pa.RecordBatch) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        return sink.getvalue().to_pybytes()

    def decode(self, data: bytes) -> pa.RecordBatch:
        return pa.ipc.open_stream(data).read_next_batch()

    def is_deterministic(self) -> bool:
        return True

    def estimate_size(self, batch: pa.RecordBatch) -> int:
        return batch.nbytes

    def to_type_hint(self):
        return pa.RecordBatch


beam.coders.registry.register_coder(pa.RecordBatch, RecordBatchCoder)
