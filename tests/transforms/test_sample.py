"""The SampleRows stage in a real pipeline: --sampling-rate keeps rows by content hash, --size keeps the N
rows with the smallest hashes, and with neither the flow passes through untouched."""
import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.hashing import content_hashes, unit_interval
from transforms.sample import SampleRows
from transforms.stage import StageOutput, SumCounts

FILE = "/data/in.csv"


def row_batch(first_row: int, texts: list[str]) -> pa.RecordBatch:
    """CSV rows (f0 = text, f1 = a label) from FILE, at lines first_row, first_row + 1, ..."""
    return pa.RecordBatch.from_pydict({
        "f0": texts, "f1": [f"label {len(t) % 3}" for t in texts],
        "source_file": [FILE] * len(texts), "source_row": list(range(first_row, first_row + len(texts)))})


# 60 rows in three batches; rows 1 and 41 hold the same content.
BATCHES = [row_batch(1, [f"sentence {i}" for i in range(20)]),
           row_batch(21, [f"another {i}" for i in range(20)]),
           row_batch(41, ["sentence 0"] + [f"third {i}" for i in range(19)])]
ALL_ROWS = pa.Table.from_batches(BATCHES)


def hashes_by_row() -> dict[int, tuple[int, float]]:
    """source_row -> (the row's content hash, that hash in [0, 1)), computed here from the fields."""
    h = content_hashes(ALL_ROWS.column("f0"), ALL_ROWS.column("f1"))
    return dict(zip(ALL_ROWS.column("source_row").to_pylist(), zip(h.tolist(), unit_interval(h).tolist())))


def rows_kept(expected_rows: list[int]):
    """A matcher: the batches hold exactly these source rows, each with its original fields."""
    original = {r["source_row"]: r for r in ALL_ROWS.to_pylist()}

    def match(batches):
        rows = [row for batch in batches for row in batch.to_pylist()]
        assert sorted(r["source_row"] for r in rows) == sorted(expected_rows)
        assert all(row == original[row["source_row"]] for row in rows)
    return match


def sampled(p, size, rate, label: str) -> StageOutput:
    """The flow after SampleRows(size, rate) over BATCHES, with assert_that on its summed counts added by the caller."""
    return StageOutput.start(p | f"Rows{label}" >> beam.Create(BATCHES)) | label >> SampleRows(size, rate)


def summed_counts(flow: StageOutput, p, label: str):
    return flow.counts | f"Flatten{label}" >> beam.Flatten(pipeline=p) | f"Sum{label}" >> beam.CombineGlobally(SumCounts())


def test_rate_keeps_the_rows_whose_hash_is_below_it():
    rate = 0.4
    by_row = hashes_by_row()
    kept = [row for row, (_, u) in by_row.items() if u < rate]
    assert 0 < len(kept) < len(by_row)
    assert (1 in kept) == (41 in kept)  # equal content: the same decision
    with TestPipeline() as p:
        flow = sampled(p, None, rate, "Rate")
        assert_that(flow.main, rows_kept(kept), label="Main")
        assert_that(summed_counts(flow, p, "Rate"), equal_to([{"sampled_out": 60 - len(kept)}]), label="Counts")


def test_size_keeps_exactly_n_rows_with_the_smallest_hashes():
    """--size 7 keeps the 7 smallest (hash, file, row); a --size above the row count keeps every row."""
    by_row = hashes_by_row()
    smallest = sorted(by_row, key=lambda row: (by_row[row][0], FILE, row))[:7]
    with TestPipeline() as p:
        flow = sampled(p, 7, None, "Size")
        assert_that(flow.main, rows_kept(smallest), label="Main")
        assert_that(summed_counts(flow, p, "Size"), equal_to([{"sampled_out": 53}]), label="Counts")
        everything = sampled(p, 100, None, "Large")
        assert_that(everything.main, rows_kept(list(by_row)), label="LargeMain")
        assert_that(summed_counts(everything, p, "Large"), equal_to([{}]), label="LargeCounts")


def test_rate_then_size_keeps_n_of_the_rate_sample():
    by_row = hashes_by_row()
    below = [row for row, (_, u) in by_row.items() if u < 0.5]
    smallest = sorted(below, key=lambda row: (by_row[row][0], row))[:5]
    with TestPipeline() as p:
        flow = sampled(p, 5, 0.5, "Both")
        assert_that(flow.main, rows_kept(smallest), label="Main")
        assert_that(summed_counts(flow, p, "Both"), equal_to([{"sampled_out": 55}]), label="Counts")


def test_no_size_and_rate_one_pass_the_flow_through():
    pipeline = beam.Pipeline()
    flow = StageOutput.start(pipeline | beam.Create(BATCHES))
    assert SampleRows(None, None).expand(flow) is flow
    assert SampleRows(None, 1.0).expand(flow) is flow
