"""The stage contract: StageOutput's start/advance/join, apply_step and SplitOutputs, count, step_outputs, SumCounts."""
import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.documents import DEAD_LETTER_SCHEMA, DeadLetter
from transforms.coders import Output
from transforms.stage import (COUNTS, DEAD_LETTERS, MAIN, SplitOutputs, StageOutput, SumCounts, apply_step, count,
                              step_outputs)


def letter(row: int, reason_class: str) -> DeadLetter:
    return DeadLetter("in.csv", row, "test", reason_class, f"row {row} is {reason_class}", f"raw {row}")


class _KeepEvenFn(beam.DoFn):
    """A batch of `n` -> its even values as MAIN, each odd one as a dead letter, and counts."""

    def process(self, batch: pa.RecordBatch):
        values = batch.column("n").to_pylist()
        even = [v for v in values if v % 2 == 0]
        dead = [letter(v, "odd") for v in values if v % 2]
        main = [pa.RecordBatch.from_pydict({"n": even})] if even else []
        yield from step_outputs(main, dead, count("test", dead, rows_read=len(values), kept=len(even)))


def batch_of(*values: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"n": list(values)})


def values_in_batches(expected: list):
    """A matcher: the batches' `n` values, in any order, are exactly `expected`."""
    def match(batches):
        assert all(isinstance(b, pa.RecordBatch) for b in batches), batches
        assert sorted(v for b in batches for v in b.column("n").to_pylist()) == sorted(expected)
    return match


def summed(pcolls: tuple, pipeline, label: str) -> beam.PCollection:
    """The stage's count dicts, summed into one dict."""
    return pcolls | f"Flatten{label}" >> beam.Flatten(pipeline=pipeline) | f"Sum{label}" >> beam.CombineGlobally(SumCounts())


def test_start_has_nothing_dead_and_nothing_counted():
    pipeline = beam.Pipeline()
    main = pipeline | beam.Create([1])
    flow = StageOutput.start(main)
    assert flow.main is main and flow.dead_letters == () and flow.counts == ()


def test_advance_replaces_main_and_appends_dead_letters_and_counts():
    pipeline = beam.Pipeline()
    a, b, dead, counts, more = (pipeline | f"C{i}" >> beam.Create([i]) for i in range(5))
    flow = StageOutput.start(a).advance(b, dead, counts)
    assert (flow.main, flow.dead_letters, flow.counts) == (b, (dead,), (counts,))
    later = flow.advance(a, counts=more)  # no dead letters of its own: none added
    assert (later.main, later.dead_letters, later.counts) == (a, (dead,), (counts, more))


def test_apply_step_splits_main_dead_letters_and_counts():
    """A DoFn yielding step_outputs: main batches become the new main, dead letters and counts are added."""
    with TestPipeline() as p:
        flow = StageOutput.start(p | beam.Create([batch_of(1, 2, 3), batch_of(4, 6)]))
        flow = apply_step(flow, "KeepEven", _KeepEvenFn())
        assert len(flow.dead_letters) == 1 and len(flow.counts) == 1
        assert_that(flow.main, values_in_batches([2, 4, 6]), label="Main")
        dead = flow.dead_letters[0] | beam.FlatMap(lambda b: [(d["source_row"], d["reason_class"]) for d in b.to_pylist()])
        assert_that(dead, equal_to([(1, "odd"), (3, "odd")]), label="Dead")
        assert_that(summed(flow.counts, p, "Counts"), equal_to([
            {"rows_read": 5, "kept": 3, "dead_letters": 2, "dead_letters.test.odd": 2}]), label="Counts")


def test_join_flattens_main_and_keeps_both_flows_dead_letters_and_counts():
    with TestPipeline() as p:
        left = apply_step(StageOutput.start(p | "Left" >> beam.Create([batch_of(1, 2)])), "L", _KeepEvenFn())
        right = apply_step(StageOutput.start(p | "Right" >> beam.Create([batch_of(3, 8)])), "R", _KeepEvenFn())
        joined = left.join(right, "Both")
        assert joined.dead_letters == left.dead_letters + right.dead_letters
        assert joined.counts == left.counts + right.counts
        assert_that(joined.main, values_in_batches([2, 8]), label="Main")
        assert_that(summed(joined.counts, p, "Counts"), equal_to([
            {"rows_read": 4, "kept": 2, "dead_letters": 2, "dead_letters.test.odd": 2}]), label="Counts")


def test_split_outputs_gives_each_kind_its_values():
    outputs = [Output(MAIN, "a"), Output(COUNTS, {"x": 1}), Output(MAIN, "b"), Output("other", 7)]
    with TestPipeline() as p:
        split = p | beam.Create(outputs) | SplitOutputs((MAIN, COUNTS, DEAD_LETTERS))
        assert set(split) == {MAIN, COUNTS, DEAD_LETTERS}
        assert_that(split[MAIN], equal_to(["a", "b"]), label="Main")
        assert_that(split[COUNTS], equal_to([{"x": 1}]), label="Counts")
        assert_that(split[DEAD_LETTERS], equal_to([]), label="Dead")


def test_count_counts_dead_letters_by_stage_and_reason_class_and_drops_zeros():
    dead = [letter(1, "encoding"), letter(2, "quote"), letter(3, "encoding")]
    assert count("read", dead, rows_read=10, header_rows=0) == {
        "rows_read": 10, "dead_letters": 3, "dead_letters.read.encoding": 2, "dead_letters.read.quote": 1}
    assert count("read") == {}


def test_step_outputs_yields_main_batches_then_one_dead_letter_batch_then_counts():
    batches = [batch_of(1), batch_of(2, 3)]
    outputs = list(step_outputs(batches, [letter(4, "odd"), letter(5, "odd")], {"rows_read": 5}))
    assert [o.kind for o in outputs] == [MAIN, MAIN, DEAD_LETTERS, COUNTS]
    assert outputs[0].value is batches[0] and outputs[1].value is batches[1]
    dead = outputs[2].value
    assert dead.schema == DEAD_LETTER_SCHEMA
    assert dead.to_pylist() == [letter(4, "odd")._asdict(), letter(5, "odd")._asdict()]
    assert outputs[3].value == {"rows_read": 5}


def test_step_outputs_without_dead_letters_yields_no_dead_letter_batch():
    assert list(step_outputs([], [], {})) == [Output(COUNTS, {})]


def test_sum_counts_adds_values_per_key_and_sorts_keys():
    combine = SumCounts()
    a = combine.add_input(combine.create_accumulator(), {"b": 1, "a": 2})
    b = combine.add_input(combine.add_input(combine.create_accumulator(), {"b": 3}), {"c": 4})
    merged = combine.merge_accumulators([a, b, combine.create_accumulator()])
    result = combine.extract_output(merged)
    assert result == {"a": 2, "b": 4, "c": 4} and list(result) == ["a", "b", "c"]
    assert combine.extract_output(combine.create_accumulator()) == {}


def test_apply_step_reads_a_main_of_several_pcollections_one_by_one():
    with TestPipeline() as p:
        parts = (p | "A" >> beam.Create([batch_of(1, 2)]), p | "B" >> beam.Create([batch_of(3, 4), batch_of(6)]))
        flow = apply_step(StageOutput(parts), "KeepEven", _KeepEvenFn())
        assert_that(flow.main, values_in_batches([2, 4, 6]), label="Main")
        assert_that(summed(flow.counts, p, "Counts"), equal_to([{"dead_letters": 2, "dead_letters.test.odd": 2,
                                                                 "kept": 3, "rows_read": 5}]), label="Counts")
