"""The ApplyLayout stage in a real pipeline: candidates, dead letters and counts (the rules themselves are
tested in test_layout.py)."""
import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.documents import CANDIDATE_SCHEMA
from transforms.apply_layout import ApplyLayout
from transforms.layout import LayoutSpec
from transforms.stage import StageOutput, SumCounts


def rows(*records: tuple, first_row: int = 2) -> pa.RecordBatch:
    """A read-stage row batch of two-field records, numbered from first_row."""
    return pa.RecordBatch.from_pydict({"f0": [r[0] for r in records], "f1": [r[1] for r in records],
                                       "source_file": ["/data/in.csv"] * len(records),
                                       "source_row": list(range(first_row, first_row + len(records)))})


def test_apply_layout_stage_emits_candidates_dead_letters_and_counts():
    batches = [rows(("q1", "doc a"), ("q1", "doc b")), rows(("q2", ""), ("q3", "doc c"), first_row=10)]
    with TestPipeline() as p:
        flow = StageOutput.start(p | beam.Create(batches)) | "Layout" >> ApplyLayout(LayoutSpec("pairs", ("text", "text")))

        def candidates_are(docs):
            assert all(b.schema == CANDIDATE_SCHEMA for b in docs)
            got = sorted((d["text"], d["label"], d["source_row"]) for d in pa.Table.from_batches(docs).to_pylist())
            assert got == sorted([("q1", "q1", 2), ("q1", "q1", 3), ("doc a", "q1", 2), ("doc b", "q1", 3),
                                  ("q3", "q3", 11), ("doc c", "q3", 11)])

        assert_that(flow.main, candidates_are, label="Main")
        dead = (flow.dead_letters | "FlattenDead" >> beam.Flatten(pipeline=p)
                | beam.FlatMap(lambda b: [(d["source_row"], d["reason_class"]) for d in b.to_pylist()]))
        assert_that(dead, equal_to([(10, "empty_value")]), label="Dead")
        counts = (flow.counts | "FlattenCounts" >> beam.Flatten(pipeline=p) | beam.CombineGlobally(SumCounts()))
        assert_that(counts, equal_to([{"rows_documented": 3, "candidate_documents": 6, "dead_letters": 1,
                                       "dead_letters.layout.empty_value": 1}]), label="Counts")
