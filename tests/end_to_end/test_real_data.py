"""Real example files read in place: Finetuner's labeled Quora questions (examples/quora-labeled.csv) and
small pair and text-image files of tests/data/csv."""
import collections
import csv

import pytest
from conftest import (
    ROOT,
    assert_reconciled,
    dead_letters,
    documents,
    run_prepare,
    sorted_docs,
)

import pipelines


def csv_rows(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def text_text(tmp_path_factory, test_data):
    """(rows by Python's csv, output) of Finetuner's labeled example prepared with --is-labeled."""
    path = ROOT / "examples" / "quora-labeled.csv"
    out = run_prepare(tmp_path_factory.mktemp("text_text"), path, "--is-labeled")
    return csv_rows(path), out


def test_text_text_file_has_the_rows_csv_reads(test_data):
    """The file has 1999 line ends (`wc -l`) and no final newline: 2000 records of two fields."""
    path = ROOT / "examples" / "quora-labeled.csv"
    assert path.read_bytes().count(b"\n") == 1999
    rows = csv_rows(path)
    assert len(rows) == 2000 and {len(r) for r in rows} == {2}


def test_text_text_one_document_per_row(text_text):
    """One labelled text document per row: as many documents as rows, and no dead letters."""
    rows, out = text_text
    table = pipelines.load_table(str(out))
    assert table.num_rows == len(rows) == 2000
    assert dead_letters(out) == []
    assert set(table.column("modality").to_pylist()) == {"text"}
    c = assert_reconciled(out)
    assert c["rows_read"] == c["rows_documented"] == c["documents_written"] == 2000


def test_text_text_labels_are_second_column(text_text):
    """Each document is (first column, labelled with the second column), exactly as csv reads them."""
    rows, out = text_text
    table = pipelines.load_table(str(out))
    got = collections.Counter(zip(table.column("text").to_pylist(), table.column("label").to_pylist()))
    assert got == collections.Counter((text, label) for text, label in rows)


def test_text_text_source_rows_are_line_numbers(text_text):
    """source_row is the 1-based line of each record (the file has no multi-line records)."""
    rows, out = text_text
    table = pipelines.load_table(str(out))
    got = sorted(zip(table.column("source_row").to_pylist(), table.column("text").to_pylist()))
    assert got == [(i + 1, r[0]) for i, r in enumerate(rows)]


def test_text_text_docs_load_with_finetuner_labels(text_text):
    """load_docs gives as many docarray documents, each with tags['finetuner_label'] = the row's label."""
    rows, out = text_text
    docs = pipelines.load_docs(str(out))
    assert len(docs) == len(rows)
    got = collections.Counter((d.text, d.tags["finetuner_label"]) for d in docs)
    assert got == collections.Counter((text, label) for text, label in rows)


def test_english_german_csv_is_read_as_query_document_pairs(tmp_path, test_data):
    """english-german.csv: each English sentence and its German one, labelled with the English."""
    out = run_prepare(tmp_path, test_data / "csv" / "english-german.csv")
    assert pipelines.load_manifest(str(out))["layout"] == "pairs"
    en1, de1 = "The weather is nice today", "Das Wetter ist heute schön"
    en2, de2 = "I would like a coffee", "Ich hätte gern einen Kaffee"
    assert documents(out) == sorted_docs([
        (en1, None, "text", en1, None, None), (en1, None, "text", de1, None, None),
        (en2, None, "text", en2, None, None), (en2, None, "text", de2, None, None),
    ])


def test_text_image_csv_gives_clip_pair_documents(tmp_path, test_data):
    """text-image.csv (image URL, text) with --no-fetch-remote: CLIP pair documents [image, text],
    one per distinct row, no label; the remote images keep their URLs and are not fetched (no blobs)."""
    path = test_data / "csv" / "text-image.csv"
    rows = csv_rows(path)
    out = run_prepare(tmp_path, path, "--no-fetch-remote")
    manifest = pipelines.load_manifest(str(out))
    assert manifest["layout"] == "pairs" and manifest["clip"] is True
    table = pipelines.load_table(str(out))
    assert set(table.column("modality").to_pylist()) == {"pair"}
    assert table.column("label").null_count == table.num_rows
    got = set()
    for row in table.to_pylist():
        image, text = row["chunks"]
        assert (image["modality"], text["modality"]) == ("image", "text")
        assert image["blob"] is None
        got.add((image["uri"], text["text"]))
    assert got == {tuple(r) for r in rows}
    assert table.num_rows == len({tuple(r) for r in rows})
    c = assert_reconciled(out)
    assert c["rows_read"] == len(rows)
    assert c.get("duplicates_removed", 0) == len(rows) - table.num_rows
