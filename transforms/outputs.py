"""Several outputs from one step, in a way every runner executes correctly.

A DoFn yields `Output(kind, value)`; `split_outputs` turns that one PCollection into one per kind with
plain single-output steps (which fuse away on most runners). Beam's tagged outputs (`with_outputs`) are not
used: Beam 2.77's DaskRunner gives every consumer all of a ParDo's outputs, whatever their tag.
"""
import pickle
from typing import Any, NamedTuple

import apache_beam as beam
import pyarrow as pa

from transforms.arrow_coder import RecordBatchCoder

MAIN = "main"
DEAD_LETTERS = "dead_letters"
COUNTS = "counts"


class Output(NamedTuple):
    """One output of a step: its kind (MAIN, DEAD_LETTERS, COUNTS) and the value."""

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


beam.coders.registry.register_coder(Output, OutputCoder)


def _values_of(output: Output, kind: str):
    if output.kind == kind:
        yield output.value


class SplitOutputs(beam.PTransform):
    """PCollection[Output] -> {kind: PCollection of that kind's values} for each of the given kinds."""

    def __init__(self, kinds: tuple, main_type=None):
        super().__init__()
        self._kinds, self._main_type = kinds, main_type

    def expand(self, outputs):
        split = {}
        for kind in self._kinds:
            step = beam.FlatMap(_values_of, kind)
            if kind == MAIN and self._main_type is not None:
                step = step.with_output_types(self._main_type)
            split[kind] = outputs | f"Select_{kind}" >> step
        return split
