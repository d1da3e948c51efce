"""The stage contract: what every stage composite takes and returns, and how its steps report.

Every stage is a `beam.PTransform` whose `expand(flow: StageOutput) -> StageOutput` turns the flow's main
PCollection into its own and adds its dead letters and counts to the ones the flow already carries, so a
job is one chain: `StageOutput.start(inputs) | "Read" >> ReadCsv(...) | "Layout" >> ApplyLayout(...) | ...`.

Inside a stage, a DoFn yields `Output(kind, value)`; `SplitOutputs` turns that one PCollection into one per
kind with plain single-output steps (which fuse away on most runners). Beam's tagged outputs
(`with_outputs`) are not used: Beam 2.77's DaskRunner gives every consumer all of a ParDo's outputs,
whatever their tag. Counts travel as data (small dicts summed by `SumCounts`) so the manifest gets them
on any runner; each count is also a Beam metrics counter (namespace `finetune_etl`) for runner UIs.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import collections
from typing import Iterable, NamedTuple, Optional

import apache_beam as beam
import pyarrow as pa

from schemas.documents import DeadLetter, dead_letter_batch
from transforms.coders import Output
from transforms.uris import redact

MAIN = "main"
DEAD_LETTERS = "dead_letters"
COUNTS = "counts"
DUPLICATES = "duplicates"
NAMESPACE = "finetune_etl"


class StageOutput(NamedTuple):
    """What flows from stage to stage: the main PCollection (Arrow batches, file records, ...), and every
    dead-letter RecordBatch PCollection, count-dict PCollection and duplicate-record PCollection ((write
    bucket, a batch of schemas.documents.DUPLICATE_SCHEMA rows as Arrow IPC bytes)) produced so far.

    `main` may also be a tuple of PCollections of the same kind, which the next stage's apply_step reads
    one by one: the FnApiRunner (DirectRunner) holds every element of a multi-input Flatten in memory, too
    much for batches of loaded media (ReuseMedia's documents and LoadMedia's, on their way to the shuffle)."""

    main: beam.PCollection
    dead_letters: tuple = ()
    counts: tuple = ()
    duplicates: tuple = ()

    @staticmethod
    def start(main: beam.PCollection) -> StageOutput:
        """The flow at a job's inputs: nothing dead, nothing counted yet."""
        return StageOutput(main)

    def advance(self, main: beam.PCollection, dead_letters: Optional[beam.PCollection] = None,
                counts: Optional[beam.PCollection] = None, duplicates: Optional[beam.PCollection] = None
                ) -> StageOutput:
        """This flow with a new main PCollection and a stage's own dead letters, counts and duplicate
        records added."""
        return StageOutput(main, self.dead_letters + _present(dead_letters), self.counts + _present(counts),
                           self.duplicates + _present(duplicates))

    def join(self, other: StageOutput, label: str) -> StageOutput:
        """Two flows as one: their main PCollections flattened, their side outputs together."""
        main = (self.main, other.main) | label >> beam.Flatten()
        return StageOutput(main, self.dead_letters + other.dead_letters, self.counts + other.counts,
                           self.duplicates + other.duplicates)


def _present(pcoll: Optional[beam.PCollection]) -> tuple:
    return () if pcoll is None else (pcoll,)


def apply_step(flow: StageOutput, label: str, dofn: beam.DoFn, main_type=pa.RecordBatch,
               duplicates: bool = False) -> StageOutput:
    """Run a DoFn that yields Outputs over the flow's main PCollection; its MAIN outputs (of `main_type`)
    become the new main, its DEAD_LETTERS and COUNTS (and DUPLICATES, when it yields them) are added to
    the flow's. A main of several PCollections (see StageOutput) is read by one ParDo each."""
    kinds = (MAIN, DEAD_LETTERS, COUNTS) + ((DUPLICATES,) if duplicates else ())
    if isinstance(flow.main, tuple):  # each part read by its own ParDo: only the (smaller) outputs are flattened
        outputs = (tuple(part | f"{label}{i}" >> beam.ParDo(dofn).with_output_types(Output)
                         for i, part in enumerate(flow.main))
                   | f"All{label}" >> beam.Flatten())
    else:
        outputs = flow.main | label >> beam.ParDo(dofn).with_output_types(Output)
    split = outputs | f"Split{label}" >> SplitOutputs(kinds, main_type)
    return flow.advance(split[MAIN], split[DEAD_LETTERS], split[COUNTS], split.get(DUPLICATES))


class OneStepStage(beam.PTransform):
    """A stage whose work is one DoFn over the flow's main PCollection (yielding Outputs, see apply_step)."""

    def __init__(self, step: beam.DoFn):
        super().__init__()
        self._step = step

    def expand(self, flow: StageOutput) -> StageOutput:
        return apply_step(flow, "Step", self._step)


def _values_of(output: Output, kind: str):
    if output.kind == kind:
        yield output.value


class SplitOutputs(beam.PTransform):
    """PCollection[Output] -> {kind: PCollection of that kind's values} for each of the given kinds."""

    def __init__(self, kinds: tuple, main_type=None):
        super().__init__()
        self._kinds, self._main_type = kinds, main_type

    def expand(self, outputs: beam.PCollection) -> dict:
        split = {}
        for kind in self._kinds:
            step = beam.FlatMap(_values_of, kind)
            if kind == MAIN and self._main_type is not None:
                step = step.with_output_types(self._main_type)
            split[kind] = outputs | f"Select_{kind}" >> step
        return split


def count(stage: str, dead: Iterable[DeadLetter] = (), **numbers: int) -> dict:
    """Counts of one step -> a flat dict; dead letters are also counted by stage and reason class."""
    counts = collections.Counter({k: v for k, v in numbers.items() if v})
    for letter in dead:
        counts["dead_letters"] += 1
        counts[f"dead_letters.{stage}.{letter.reason_class}"] += 1
    for name, value in counts.items():
        beam.metrics.Metrics.counter(NAMESPACE, name).inc(value)
    return dict(counts)


def step_outputs(main: Iterable[pa.RecordBatch], dead: list[DeadLetter], counts: dict):
    """The Outputs a step yields for one input: its main batches, its dead letters as one batch, its counts."""
    yield from (Output(MAIN, batch) for batch in main)
    if dead:
        yield Output(DEAD_LETTERS, dead_letter_batch([_redacted(letter) for letter in dead]))
    yield Output(COUNTS, counts)


def _redacted(letter: DeadLetter) -> DeadLetter:
    """A dead letter with no URL credentials in its source file, reason or raw row."""
    return letter._replace(**{k: redact(getattr(letter, k)) for k in ("source_file", "reason", "raw")
                              if getattr(letter, k) is not None})


class SumCounts(beam.CombineFn):
    """Merge count dicts by adding values per key."""

    def create_accumulator(self):
        return collections.Counter()

    def add_input(self, acc, counts):
        acc.update(counts)
        return acc

    def merge_accumulators(self, accs):
        total = collections.Counter()
        for acc in accs:
            total.update(acc)
        return total

    def extract_output(self, acc):
        return dict(sorted(acc.items()))
