"""RecordBatchCoder, TableCoder and OutputCoder: exact round trips, registration, and size estimates that do not encode."""
import apache_beam as beam
from apache_beam.typehints.native_type_compatibility import convert_to_beam_type
import pyarrow as pa
import pytest

from schemas.documents import CANDIDATE_SCHEMA
from transforms.coders import BUCKET_TABLE, Output, OutputCoder, RecordBatchCoder, TableCoder


def sample_batch() -> pa.RecordBatch:
    """Strings with nulls and non-ASCII text, list-typed and nested list columns, a uint64 column."""
    return pa.RecordBatch.from_pydict({
        "text": pa.array(["héllo, \"world\"\n", None, ""], pa.string()),
        "tags": pa.array([["a", "b"], None, []], pa.list_(pa.string())),
        "points": pa.array([[[0.0, 1.0, 2.0]], [], None], pa.list_(pa.list_(pa.float32(), 3))),
        "_key": pa.array([0, 2**64 - 1, 12345], pa.uint64()),
    })


class _RefusesToEncode(RecordBatchCoder):
    def encode(self, batch):
        raise AssertionError("estimate_size must not encode")


def test_record_batch_round_trip_is_exact():
    coder = RecordBatchCoder()
    batch = sample_batch()
    decoded = coder.decode(coder.encode(batch))
    assert decoded.schema == batch.schema
    assert decoded.equals(batch)
    assert decoded.to_pylist() == batch.to_pylist()


def test_record_batch_round_trip_of_an_empty_candidate_batch_keeps_the_schema():
    coder = RecordBatchCoder()
    batch = pa.RecordBatch.from_pylist([], schema=CANDIDATE_SCHEMA)
    decoded = coder.decode(coder.encode(batch))
    assert decoded.schema == CANDIDATE_SCHEMA and decoded.num_rows == 0


def test_record_batch_coder_is_deterministic_and_encodes_equal_batches_equally():
    coder = RecordBatchCoder()
    assert coder.is_deterministic()
    assert coder.encode(sample_batch()) == coder.encode(sample_batch())


@pytest.mark.parametrize("value", [
    {"rows_read": 3, "dead_letters.read.quote": 1},
    [1, "two", None],
    ("bucket", 7),
])
def test_output_round_trip_of_pickled_values(value):
    coder = OutputCoder()
    assert coder.decode(coder.encode(Output("counts", value))) == Output("counts", value)


def test_output_round_trip_of_a_batch_uses_arrow_ipc():
    coder = OutputCoder()
    data = coder.encode(Output("dead_letters", sample_batch()))
    assert data.startswith(b"Adead_letters\0")
    decoded = coder.decode(data)
    assert decoded.kind == "dead_letters"
    assert decoded.value.equals(sample_batch())


def test_estimate_size_reads_nbytes_without_encoding():
    batch = sample_batch()
    assert _RefusesToEncode().estimate_size(batch) == batch.nbytes

    class Coder(OutputCoder):
        _batches = _RefusesToEncode()

    assert Coder().estimate_size(Output("main", batch)) == batch.nbytes
    assert Coder().estimate_size(Output("counts", {"a": 1})) == 64


def test_coders_are_registered_for_their_types():
    assert isinstance(beam.coders.registry.get_coder(pa.RecordBatch), RecordBatchCoder)
    assert isinstance(beam.coders.registry.get_coder(Output), OutputCoder)
    assert RecordBatchCoder().to_type_hint() is pa.RecordBatch and OutputCoder().to_type_hint() is Output


def test_table_round_trip_keeps_every_chunk_and_the_schema_metadata():
    batch = sample_batch()
    table = pa.Table.from_batches([batch, batch.slice(1)]).replace_schema_metadata({b"k": b"v"})
    decoded = TableCoder().decode(TableCoder().encode(table))
    assert decoded.equals(table) and decoded.schema.metadata == {b"k": b"v"}


def test_a_bucket_and_its_table_are_sized_from_the_buffers_without_encoding():
    """What the group stage hands the writers: Beam measures it with these coders, never by pickling it."""
    class Refuses(TableCoder):
        def encode(self, table):
            raise AssertionError("estimate_size must not encode")

    table = pa.Table.from_batches([sample_batch()])
    assert Refuses().estimate_size(table) == table.nbytes
    coder = beam.coders.registry.get_coder(convert_to_beam_type(BUCKET_TABLE))  # as with_output_types does
    assert coder == beam.coders.TupleCoder([beam.coders.VarIntCoder(), TableCoder()])
    assert coder.decode(coder.encode((7, table)))[0] == 7
    assert coder.estimate_size((7, table)) < table.nbytes + 16
