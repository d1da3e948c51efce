"""Layout stage: CSV row batches -> candidate document batches, by the run's layout (transforms/layout.py)."""
from typing import Iterator

import apache_beam as beam
import pyarrow as pa

from transforms.layout import STAGE, LayoutSpec, apply_layout
from transforms.stage import OneStepStage, count, step_outputs


class _ApplyLayoutFn(beam.DoFn):
    def __init__(self, spec: LayoutSpec):
        self._spec = spec

    def process(self, rows: pa.RecordBatch) -> Iterator:
        docs, dead, documented = apply_layout(rows, self._spec)
        yield from step_outputs([] if docs is None else [docs], dead, count(
            STAGE, rows_documented=documented, candidate_documents=0 if docs is None else docs.num_rows, dead=dead))


class ApplyLayout(OneStepStage):
    """Stage: main = RecordBatches of CSV rows -> main = candidate RecordBatches (CANDIDATE_SCHEMA)."""

    def __init__(self, spec: LayoutSpec):
        super().__init__(_ApplyLayoutFn(spec))
