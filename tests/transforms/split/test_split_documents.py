"""The SplitDocuments stage on the DirectRunner's engine: buckets of query-document pairs (some documents
shared by two queries, some marked as one near-duplicate cluster) -> the same tables with each document's
split, as an in-memory oracle over the whole graph gives it, in any number of partitions."""
import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.documents import DOCUMENT_SCHEMA
from schemas.options import SplitOptions
from transforms.document_keys import document_keys, hex_ids
from transforms.split.assign import plan_splits
from transforms.split.components import component_of, resolve_residual
from transforms.split.nodes import document_graph
from transforms.split.split_documents import SplitDocuments
from transforms.stage import StageOutput, SumCounts

OPTIONS = SplitOptions((("train", 0.6), ("validation", 0.2), ("test", 0.2)), seed=3)
BUCKETS = 4


def pairs_documents() -> list[dict]:
    """60 queries, each with itself and 1-4 documents; every 7th query also names a document of the one
    before; documents 10-0 and 20-0 are near-duplicates (one cluster), as are 30-0, 31-0 and 45-1."""
    rng = np.random.default_rng(5)
    cluster = {"document 10-0": "a", "document 20-0": "a", "document 30-0": "b", "document 31-0": "b",
               "document 45-1": "b"}
    docs = []
    for q in range(60):
        texts = [f"query {q}"] + [f"document {q}-{d}" for d in range(rng.integers(1, 5))]
        texts += [f"document {q - 1}-0"] if q % 7 == 1 else []
        docs += [dict(label=f"query {q}", text=text, duplicate_group=cluster.get(text)) for text in texts]
    return docs


def bucket_tables(docs: list[dict]) -> list[tuple]:
    """Documents -> (bucket, table of DOCUMENT_SCHEMA sorted by id) as the group stage gives them."""
    rows = [{"id": "0" * 16, "modality": "text", "source_file": "pairs.csv", "source_row": n, **doc}
            for n, doc in enumerate(docs)]
    keys = document_keys(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA))
    for row, key in zip(rows, hex_ids(keys).to_pylist()):
        row["id"] = key
    tables = []
    for bucket in range(BUCKETS):
        mine = sorted((r for r, key in zip(rows, keys) if key % np.uint64(BUCKETS) == bucket), key=lambda r: r["id"])
        tables.append((bucket, pa.Table.from_pylist(mine, schema=DOCUMENT_SCHEMA)))
    return tables


def expected_splits(tables: list[tuple]) -> dict:
    """The oracle: {id: split} from the components of the whole graph and the plan of its groups."""
    documents = pa.concat_tables([table for _, table in tables])
    primary, owner, v = document_graph(documents, keep_labels_whole=True)
    group = component_of(primary, *resolve_residual(primary[owner], v))
    groups, sizes = np.unique(group, return_counts=True)
    plan = plan_splits(groups, sizes, np.zeros(groups.size, np.uint64), (0.6, 0.2, 0.2), OPTIONS.seed)
    names = np.array(OPTIONS.names)[plan.split_of(group)]
    return dict(zip(documents.column("id").to_pylist(), names.tolist()))


def splits_of(element) -> list[tuple]:
    _, table = element
    return list(zip(table.column("id").to_pylist(), table.column("split").to_pylist()))


def unchanged_but_the_split(tables: list[tuple]):
    before = {bucket: table.drop_columns(["split"]) for bucket, table in tables}

    def check(elements):
        assert sorted(bucket for bucket, _ in elements) == list(range(BUCKETS))
        for bucket, table in elements:
            assert table.schema == DOCUMENT_SCHEMA and table.drop_columns(["split"]).equals(before[bucket])
    return check


def test_the_stage_gives_every_document_its_groups_split_in_any_number_of_partitions(tmp_path):
    tables = bucket_tables(pairs_documents())
    expected = expected_splits(tables)
    assert set(expected.values()) == set(OPTIONS.names)
    with TestPipeline(runner=FnApiRunner()) as p:
        for partitions in (1, 3):
            flow = (StageOutput.start(p | f"Buckets{partitions}" >> beam.Create(tables))
                    | f"Split{partitions}" >> SplitDocuments(OPTIONS, "pairs", str(tmp_path / f"p{partitions}"), partitions))
            assert_that(flow.main | f"Splits{partitions}" >> beam.FlatMap(splits_of),
                        equal_to(sorted(expected.items())), label=f"CheckSplits{partitions}")
            assert_that(flow.main, unchanged_but_the_split(tables), label=f"CheckTables{partitions}")
            counts = (flow.counts | f"Flatten{partitions}" >> beam.Flatten(pipeline=p)
                      | f"Sum{partitions}" >> beam.CombineGlobally(SumCounts())
                      | f"Documents{partitions}" >> beam.Map(
                          lambda c: sum(c[f"split.{name}.documents"] for name in OPTIONS.names)))
            assert_that(counts, equal_to([len(expected)]), label=f"CheckCounts{partitions}")


def test_near_duplicates_and_shared_documents_share_a_split():
    """The oracle itself keeps each query with its documents, a shared document's two queries, and each
    near-duplicate cluster together (what the stage is checked against above)."""
    tables = bucket_tables(pairs_documents())
    expected = expected_splits(tables)
    documents = pa.concat_tables([table for _, table in tables]).to_pylist()
    split_of = {}
    for doc in documents:
        for key in (("label", doc["label"]), ("text", doc["text"]), ("cluster", doc["duplicate_group"])):
            if key[1] is not None:
                split_of.setdefault(key, set()).add(expected[doc["id"]])
    assert all(len(splits) == 1 for splits in split_of.values())
    assert split_of[("label", "query 10")] == split_of[("label", "query 20")]  # joined by cluster a
    assert split_of[("label", "query 30")] == split_of[("label", "query 31")] == split_of[("label", "query 45")]
