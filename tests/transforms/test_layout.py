"""The layout rules: CSV rows -> candidate documents for each layout, dead letters with reasons, media paths
resolved against the CSV's folder."""
import pyarrow as pa
import pytest

from schemas.documents import CANDIDATE_SCHEMA, KEY, RAW
from transforms.document_keys import document_keys
from transforms.layout import LayoutSpec, apply_layout, row_texts

CSV = "/data/csvs/in.csv"


def rows(*records: tuple, file: str = CSV, first_row: int = 2) -> pa.RecordBatch:
    """A read-stage row batch: string columns f0.., source_file, source_row (first_row, first_row + 1, ...)."""
    columns = {f"f{i}": [record[i] for record in records] for i in range(len(records[0]))}
    columns.update(source_file=[file] * len(records), source_row=list(range(first_row, first_row + len(records))))
    return pa.RecordBatch.from_pydict(columns)


def fields(docs: pa.RecordBatch, *names: str) -> list[tuple]:
    return [tuple(doc[n] for n in names) for doc in docs.to_pylist()]


def chunk_fields(docs: pa.RecordBatch) -> list[list[tuple]]:
    return [[(c["modality"], c["text"], c["uri"]) for c in doc["chunks"]] for doc in docs.to_pylist()]


def letters(dead) -> list[tuple]:
    return [(d.source_row, d.stage, d.reason_class, d.reason, d.raw) for d in dead]


def assert_keys_are_content_keys(docs: pa.RecordBatch):
    assert docs.schema == CANDIDATE_SCHEMA
    without_key = docs.set_column(docs.schema.get_field_index(KEY), KEY, pa.nulls(docs.num_rows, pa.uint64()))
    assert docs.column(KEY).to_pylist() == document_keys(without_key).tolist()


# --- layouts --------------------------------------------------------------------------------------------


def test_labeled_rows_become_labeled_documents():
    docs, dead, documented = apply_layout(rows(("a cat", "animals"), ("a rose", "plants")), LayoutSpec("labeled", ("text",)))
    assert (dead, documented) == ([], 2)
    assert fields(docs, "modality", "text", "uri", "label", "score", "chunks", "source_file", "source_row") == [
        ("text", "a cat", None, "animals", None, None, CSV, 2), ("text", "a rose", None, "plants", None, None, CSV, 3)]
    assert_keys_are_content_keys(docs)


def test_pairs_give_the_query_and_the_document_both_labelled_with_the_query():
    docs, dead, documented = apply_layout(rows(("q1", "doc a"), ("q1", "doc b")), LayoutSpec("pairs", ("text", "text")))
    assert (dead, documented) == ([], 2)
    assert fields(docs, "modality", "text", "label", "source_row") == [
        ("text", "q1", "q1", 2), ("text", "q1", "q1", 3), ("text", "doc a", "q1", 2), ("text", "doc b", "q1", 3)]
    keys = docs.column(KEY).to_pylist()
    assert keys[0] == keys[1] and len(set(keys)) == 3  # the repeated query has one key (removed later)
    assert_keys_are_content_keys(docs)
    assert LayoutSpec("pairs", ("text", "text")).removes_duplicates and not LayoutSpec("pairs", ("text", "text")).is_clip


def test_clip_pairs_give_one_two_chunk_document_per_row():
    spec = LayoutSpec("pairs", ("text", "image"))
    assert spec.is_clip and spec.removes_duplicates
    docs, dead, documented = apply_layout(rows(("a, cat", "img/a.jpg"), ("a dog", "gs://bucket/dog.png")), spec)
    assert (dead, documented) == ([], 2)
    assert fields(docs, "modality", "text", "uri", "label", "score") == [("pair", None, None, None, None)] * 2
    assert chunk_fields(docs) == [[("text", "a, cat", None), ("image", None, "/data/csvs/img/a.jpg")],
                                  [("text", "a dog", None), ("image", None, "gs://bucket/dog.png")]]
    assert_keys_are_content_keys(docs)


def test_scores_are_divided_by_the_scale():
    docs, dead, documented = apply_layout(rows(("a", "b", "3"), ("c", "d", "0"), ("e", "f", " 5 ")),
                                          LayoutSpec("scores", ("text", "text"), 5))
    assert (dead, documented) == ([], 3)
    assert fields(docs, "modality", "score", "label") == [("pair", 0.6, None), ("pair", 0.0, None), ("pair", 1.0, None)]
    assert chunk_fields(docs)[0] == [("text", "a", None), ("text", "b", None)]
    assert_keys_are_content_keys(docs)


def test_values_make_every_cell_an_unlabelled_document():
    docs, dead, documented = apply_layout(rows(("x", "y.jpg"), ("z", "w.jpg")), LayoutSpec("values", ("text", "image")))
    assert (dead, documented) == ([], 2)
    assert fields(docs, "modality", "text", "uri", "label", "source_row") == [
        ("text", "x", None, None, 2), ("text", "z", None, None, 3),
        ("image", None, "/data/csvs/y.jpg", None, 2), ("image", None, "/data/csvs/w.jpg", None, 3)]
    assert_keys_are_content_keys(docs)


# --- dead letters ---------------------------------------------------------------------------------------


def test_empty_values_and_labels_are_dead_letters():
    docs, dead, documented = apply_layout(rows(("  ", "x"), ("ok", "fine"), ("text", ""), ("", "")),
                                          LayoutSpec("labeled", ("text",)))
    assert documented == 1 and fields(docs, "text") == [("ok",)]
    assert letters(dead) == [
        (2, "layout", "empty_value", "column 1 is empty", "  ,x"),
        (4, "layout", "empty_value", "the label (column 2) is empty", "text,"),
        (5, "layout", "empty_value", "column 1 is empty", ","),  # the first reason found is the one given
    ]


def test_values_with_one_empty_cell_make_the_row_a_dead_letter():
    docs, dead, documented = apply_layout(rows(("a", "b"), ("c", "")), LayoutSpec("values", ("text", "text")))
    assert documented == 1 and fields(docs, "text") == [("a",), ("b",)]
    assert letters(dead) == [(3, "layout", "empty_value", "column 2 is empty", "c,")]


def test_a_value_of_another_modality_is_a_dead_letter_that_says_what_it_looks_like():
    docs, dead, documented = apply_layout(rows(("a, cat", "img/a.jpg"), ("a dog", "not an image"), ("m", "x.off")),
                                          LayoutSpec("pairs", ("text", "image")))
    assert documented == 1 and chunk_fields(docs)[0][0] == ("text", "a, cat", None)
    assert letters(dead) == [
        (3, "layout", "modality", "column 2 is 'not an image', which looks like text, but column 2 holds image "
                                  "elsewhere; pass --modalities to force it", "a dog,not an image"),
        (4, "layout", "modality", "column 2 is 'x.off', which looks like a mesh URI, but column 2 holds image "
                                  "elsewhere; pass --modalities to force it", "m,x.off"),
    ]


def test_bad_scores_are_dead_letters_with_reasons():
    docs, dead, documented = apply_layout(rows(("a", "b", "x"), ("a", "b", "7"), ("a", "b", "-0.5"), ("a", "b", "nan")),
                                          LayoutSpec("scores", ("text", "text"), 5))
    assert (docs, documented) == (None, 0)
    assert [(d.source_row, d.reason_class, d.reason) for d in dead] == [
        (2, "score", "score 'x' is not a number"),
        (3, "score", "score 7 is outside [0, 1] (after dividing by --score-scale 5)"),
        (4, "score", "score -0.5 is outside [0, 1] (after dividing by --score-scale 5)"),
        (5, "score", "score 'nan' is not a number"),
    ]
    _, unscaled, _ = apply_layout(rows(("a", "b", "1.5")), LayoutSpec("scores", ("text", "text")))
    assert unscaled[0].reason == ("score 1.5 is outside [0, 1]; pass --score-scale to divide scores on another "
                                  "scale (5 for STS-B)")


def test_dead_letter_raw_quotes_fields_as_csv_does():
    _, dead, _ = apply_layout(rows(('say "hi", twice', "line\nbreak", "x")), LayoutSpec("scores", ("text", "text")))
    assert dead[0].raw == '"say ""hi"", twice","line\nbreak",x'


# --- media paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("csv, expected", [
    ("/data/csvs/in.csv", ["/data/csvs/img/a.jpg", "/data/csvs/../b.png"]),
    ("gs://bucket/folder/in.csv", ["gs://bucket/folder/img/a.jpg", "gs://bucket/folder/../b.png"]),
    ("in.csv", ["img/a.jpg", "../b.png"]),
])
def test_relative_media_paths_are_resolved_against_the_csv_folder(csv, expected):
    absolute = ["/abs/c.jpg", "https://host/d.jpg?s=1", "gs://other/e.png", "file:///f/g.jpg"]
    values = ["img/a.jpg", "../b.png"] + absolute
    docs, dead, _ = apply_layout(rows(*[(v, "label") for v in values], file=csv), LayoutSpec("labeled", ("image",)))
    assert dead == []
    assert docs.column("uri").to_pylist() == expected + absolute
    assert docs.column("text").null_count == docs.num_rows


def test_relative_media_paths_stay_as_written_relative_to_the_media_root():
    """With the run's media root (the inputs' common folder), a relative path is kept as the CSV wrote it
    (prefixed by the CSV's folder within the root): the dataset means the same on another machine."""
    values = ["img/a.jpg", "../b.png", "/abs/c.jpg", "gs://other/e.png"]
    spec = LayoutSpec("labeled", ("image",), media_root="/data")
    docs, _, _ = apply_layout(rows(*[(v, "label") for v in values], file="/data/in.csv"), spec)
    assert docs.column("uri").to_pylist() == values
    docs, _, _ = apply_layout(rows(*[(v, "label") for v in values], file="/data/csvs/in.csv"), spec)
    assert docs.column("uri").to_pylist() == ["csvs/img/a.jpg", "csvs/../b.png", "/abs/c.jpg", "gs://other/e.png"]


def test_an_image_query_labels_its_pairs_with_the_uri_the_dataset_keeps():
    spec = LayoutSpec("pairs", ("image", "image"), media_root="/data")
    docs, _, _ = apply_layout(rows(("q.jpg", "d1.jpg"), ("q.jpg", "d2.jpg"), file="/data/set/in.csv"), spec)
    assert fields(docs, "uri", "label") == [("set/q.jpg", "set/q.jpg"), ("set/q.jpg", "set/q.jpg"),
                                            ("set/d1.jpg", "set/q.jpg"), ("set/d2.jpg", "set/q.jpg")]
    assert_keys_are_content_keys(docs)


@pytest.mark.parametrize("layout, modalities, records, documents", [
    ("labeled", ("image",), [("img/a,b.jpg", "cats"), ("c.png", "dogs")], 1),
    ("pairs", ("image", "image"), [("q.jpg", "d,1.jpg"), ("q.jpg", "e.jpg")], 2),
    ("pairs", ("text", "image"), [("a, cat", "cat.jpg"), ("a dog", "dog.jpg")], 1),
    ("values", ("text", "mesh"), [("x\ny", "m.ply"), ("z", "n.obj")], 2),
])
def test_media_candidates_carry_their_csv_row_for_the_media_stage(layout, modalities, records, documents):
    """Every candidate of a run that loads media keeps its row's text (as a layout dead letter's raw);
    text-only runs carry nothing."""
    batch = rows(*records)
    docs, dead, _ = apply_layout(batch, LayoutSpec(layout, modalities))
    assert dead == [] and docs.num_rows == 2 * documents
    expected = row_texts(batch).to_pylist()
    assert '"' in expected[0] and docs.column(RAW).to_pylist() == expected * documents
    by_row = {(d["source_row"], d[RAW]) for d in docs.to_pylist()}
    assert by_row == {(2, expected[0]), (3, expected[1])}
    text_only, _, _ = apply_layout(rows(("a", "b")), LayoutSpec("labeled", ("text",)))
    assert text_only.column(RAW).null_count == text_only.num_rows


def test_a_modality_dead_letter_advises_what_fits_the_run():
    """Without --modalities it suggests the option; with it, it says the option decided; on line 1 it also
    suggests --header yes (a header row the header detection missed is the usual cause there)."""
    rows = pa.RecordBatch.from_pydict({"f0": ["image", "b.jpg"], "f1": ["label", "x"],
                                       "source_file": ["f.csv", "f.csv"], "source_row": [1, 2]})
    detected = apply_layout(rows, LayoutSpec("labeled", ("image",)))[1]
    forced = apply_layout(rows, LayoutSpec("labeled", ("image",), modalities_forced=True))[1]
    assert [d.source_row for d in detected] == [1]
    assert "pass --modalities" in detected[0].reason and "pass --header yes" in detected[0].reason
    assert "--modalities says column 1 holds image" in forced[0].reason and "pass --modalities" not in forced[0].reason
