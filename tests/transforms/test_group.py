"""The group stage: cutting batches by bucket, finishing a bucket (ids, `-k` suffixes, duplicates), and the
GroupDocuments stage in a real pipeline with its spill files in a staging folder."""
import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from schemas.documents import CANDIDATE_SCHEMA, DOCUMENT_SCHEMA, KEY
from transforms.group import GroupDocuments, finish_documents, read_bucket, split_by_bucket
from transforms.layout import LayoutSpec, apply_layout
from transforms.stage import StageOutput, SumCounts

BUCKETS = 4


def candidates(*docs: dict) -> pa.Table:
    """Candidate documents given with their `_key` (text modality, from in.csv line i+1 unless given)."""
    rows = [{"modality": "text", "source_file": "in.csv", "source_row": i + 1, **doc} for i, doc in enumerate(docs)]
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def labeled_candidates(first_row: int, *records: tuple) -> pa.RecordBatch:
    """(text, label) CSV records -> the candidates the layout stage makes of them, with real content keys."""
    columns = {"f0": [r[0] for r in records], "f1": [r[1] for r in records], "source_file": ["/d/in.csv"] * len(records),
               "source_row": list(range(first_row, first_row + len(records)))}
    docs, dead, _ = apply_layout(pa.RecordBatch.from_pydict(columns), LayoutSpec("labeled", ("text",)))
    assert not dead
    return docs


# --- split_by_bucket --------------------------------------------------------------------------------------


def test_split_by_bucket_gives_each_bucket_its_rows_in_batch_order():
    batch = pa.RecordBatch.from_pydict({"n": [10, 11, 12, 13, 14, 15]})
    keys = np.array([5, 2, 7, 9, 6, 2**64 - 1], dtype=np.uint64)  # buckets (mod 3): 2, 2, 1, 0, 0, 0
    parts = [(bucket, part.column("n").to_pylist()) for bucket, part in split_by_bucket(batch, keys, 3)]
    assert parts == [(0, [13, 14, 15]), (1, [12]), (2, [10, 11])]


def test_split_by_bucket_keeps_only_the_rows_asked():
    batch = pa.RecordBatch.from_pydict({"n": [10, 11, 12, 13]})
    keys = np.array([1, 2, 3, 5], dtype=np.uint64)
    keep = np.array([True, False, False, True])
    parts = [(bucket, part.column("n").to_pylist()) for bucket, part in split_by_bucket(batch, keys, 2, keep)]
    assert parts == [(1, [10, 13])]
    assert list(split_by_bucket(batch, keys, 2, np.zeros(4, dtype=bool))) == []


# --- finish_documents -------------------------------------------------------------------------------------


def test_finish_documents_gives_hex_ids_sorted_and_drops_the_key():
    table, removed = finish_documents(candidates({"text": "b", KEY: 0xB}, {"text": "a", KEY: 0xA}), False)
    assert removed is None
    assert table.schema == DOCUMENT_SCHEMA
    assert table.select(["id", "text"]).to_pylist() == [{"id": "000000000000000a", "text": "a"},
                                                      {"id": "000000000000000b", "text": "b"}]


def test_finish_documents_keeps_repeats_with_k_suffixes_in_source_order():
    docs = candidates({"text": "same", KEY: 7, "source_row": 9}, {"text": "same", KEY: 7, "source_row": 3},
                      {"text": "other", KEY: 1}, {"text": "same", KEY: 7, "source_row": 5})
    table, removed = finish_documents(docs, False)
    assert removed is None
    assert [(r["id"], r["source_row"]) for r in table.to_pylist()] == [
        ("0000000000000001", 3), ("0000000000000007", 3), ("0000000000000007-1", 5), ("0000000000000007-2", 9)]


def test_finish_documents_removes_duplicates_and_keeps_the_first_copy():
    """The copy from the earliest (file, row) stays; equal keys with other content (a collision) stay, with `-1`."""
    docs = candidates({"text": "same", KEY: 7, "source_row": 9}, {"text": "same", KEY: 7, "source_row": 3},
                      {"text": "collides", KEY: 7, "source_row": 12, "label": "x"}, {"text": "other", KEY: 1})
    table, (repeats_removed, listed) = finish_documents(docs, True)
    assert repeats_removed == 1 and listed.to_pylist() == [{
        "id": None, "kept_id": "0000000000000007", "kind": "exact", "similarity": 1.0, "removed": True,
        "modality": "text", "label": None, "text": None, "uri": None, "source_file": "in.csv", "source_row": 9}]
    assert [(r["id"], r["text"], r["source_row"]) for r in table.to_pylist()] == [
        ("0000000000000001", "other", 4), ("0000000000000007", "same", 3), ("0000000000000007-1", "collides", 12)]


def test_a_query_named_by_several_rows_is_counted_but_not_listed():
    """In query-document pairs the query document repeats once per row: one document, not a duplicate."""
    docs = candidates({"text": "q", "label": "q", KEY: 5, "source_row": 1}, {"text": "q", "label": "q", KEY: 5, "source_row": 2},
                      {"text": "d", "label": "q", KEY: 6, "source_row": 1}, {"text": "d", "label": "q", KEY: 6, "source_row": 3})
    table, (repeats_removed, listed) = finish_documents(docs, True)
    assert table.num_rows == 2 and repeats_removed == 2
    assert [(r["kept_id"], r["source_row"]) for r in listed.to_pylist()] == [("0000000000000006", 3)]


# --- the stage --------------------------------------------------------------------------------------------


def test_group_documents_stage_spills_groups_and_finishes_every_bucket(tmp_path):
    batches = [labeled_candidates(1, *[(f"text {i}", f"label {i % 3}") for i in range(12)], ("text 0", "label 0")),
               labeled_candidates(20, ("text 1", "label 1"), ("text 2", "label 0"), ("new", "label 9"))]
    every = pa.Table.from_batches(batches)
    distinct = {(r["text"], r["label"]): r[KEY] for r in every.to_pylist()}
    assert len(distinct) == 14 and every.num_rows == 16  # two copies of (text 0, label 0) and (text 1, label 1)
    expected_buckets = {key % BUCKETS for key in distinct.values()}
    assert len(expected_buckets) > 1

    def documents_per_bucket(removes_duplicates: bool):
        def match(outputs):
            assert sorted(bucket for bucket, _ in outputs) == sorted(expected_buckets)  # each bucket once
            docs = []
            for bucket, table in outputs:
                assert table.schema == DOCUMENT_SCHEMA
                ids = table.column("id").to_pylist()
                assert ids == sorted(ids)
                for doc in table.to_pylist():
                    assert distinct[(doc["text"], doc["label"])] % BUCKETS == bucket
                    assert doc["id"].split("-")[0] == format(distinct[(doc["text"], doc["label"])], "016x")
                    docs.append((doc["id"], doc["text"], doc["label"], doc["source_row"]))
            assert len({d[0] for d in docs}) == len(docs)  # ids are unique
            texts = sorted((text, label) for _, text, label, _ in docs)
            assert texts == sorted(distinct if removes_duplicates else [(r["text"], r["label"]) for r in every.to_pylist()])
            if removes_duplicates:  # the first copy (earliest line) stays
                assert {(t, row) for _, t, _, row in docs if t in ("text 0", "text 1")} == {("text 0", 1), ("text 1", 2)}
            else:  # the later copies are kept with a `-1` id
                assert sorted((t, row) for i, t, _, row in docs if i.endswith("-1")) == [("text 0", 13), ("text 1", 20)]
        return match

    def counts_and_files(folder, removes_duplicates: bool):
        def match(outputs):
            [counts] = outputs
            files = list((folder / "spill").glob("*/*.arrow"))
            assert counts == {"staged_objects": len(files), **({"duplicates_removed": 2} if removes_duplicates else {})}
        return match

    # (label, removes duplicates, spill bytes): one file for the bundle, or one per batch (1 byte is full at once)
    variants = (("Dedupe", True, None), ("Keep", False, None), ("FilePerBatch", True, 1))
    with TestPipeline() as p:
        inputs = p | beam.Create(batches)
        for label, removes, spill_bytes in variants:
            extra = {} if spill_bytes is None else {"spill_bytes": spill_bytes}
            flow = StageOutput.start(inputs) | label >> GroupDocuments(str(tmp_path / label), BUCKETS, removes, **extra)
            assert_that(flow.main, documents_per_bucket(removes), label=f"{label}Main")
            counts = flow.counts | f"{label}Flatten" >> beam.Flatten(pipeline=p) | f"{label}Sum" >> beam.CombineGlobally(SumCounts())
            assert_that(counts, counts_and_files(tmp_path / label, removes), label=f"{label}Counts")

    for label, removes, spill_bytes in variants:
        files = list((tmp_path / label / "spill").glob("*/*.arrow"))
        # a file per bundle and worker at most (a TestPipeline: one), each batch in its own file when 1 byte fills one
        assert len(files) == (len(batches) if spill_bytes == 1 else 1)
        listed = {f: pa.ipc.open_file(str(f)).schema.metadata[b"buckets"].decode().split(",") for f in files}
        assert set().union(*listed.values()) == {str(b) for b in expected_buckets}
        for f, buckets in listed.items():  # one record batch per bucket, in bucket order, whatever the batches
            assert pa.ipc.open_file(str(f)).num_record_batches == len(buckets)
            assert buckets == sorted(set(buckets), key=int)
        spilled = sum(read_bucket(str(f), int(b)).num_rows for f, buckets in listed.items() for b in set(buckets))
        assert spilled == every.num_rows - removes  # the copy of `text 0` within the first batch is not spilled
