"""Every CSV example of Finetuner's "Prepare Training Data" page (the seed page), verbatim, as the spec.

Each example is its own file; options are the defaults unless the page says otherwise (is_labeled=True is
`--is-labeled`; the similarity examples are "a three-column CSV file" of scores).
"""
import pytest
from conftest import assert_reconciled, counts, dead_letters, documents, run_prepare, sorted_docs, \
    text_documents, write_csv

import pipelines
from pipelines.cli import main

LABELED_TEXT = """\
Hello!, greeting-english
Hi there., greeting-english
Good morning., greeting-english
I'm (…) sorry!, apologize-english
I'm sorry to have…, apologize-english
Please ... forgive me!, apologize-english
"""

LABELED_IMAGES = """\
/Users/images/apples/green_apple.jpg, picture of apple
/Users/images/apples/red_apple.jpg, picture of apple
https://example.com/apple-styling.jpg, picture of apple
/Users/images/oranges/orange.jpg, picture of orange
https://example.com/orange-styling.jpg, picture of orange
"""

QUERY_DOCUMENT = """\
Rice dishes, Chicken curry
Rice dishes, Ristto
Pasta dishes, Spaghetti bolognese
Vegetable dishes, Ratitouille
...
"""

CLIP = """\
This is a photo of an apple., apple.jpg
This is a black-white photo of an organge., orange.jpg
"""

CLIP_REVERSED = """\
apple.jpg, This is a photo of an apple.
orange.jpg, This is a black-white photo of an organge.
"""

SCORES = """\
The weather is nice, The weather is beautiful, 0.9
The weather is nice, The weather is bad, 0
"""

# The page's quoted-comma example, verbatim: typographic quotes and both records on one line.
TYPOGRAPHIC = (
    "\u201cIf we\u2019re ordering lunch, we should get pizza\u201d, \u201cI want to order pizza for lunch\u201d, 0.8 "
    "\u201cIf you\u2019re headed out, can you take out the garbage?\u201d, "
    "\u201cI\u2019m going to have to take the trash out myself, aren\u2019t I?\u201d, 0.1\n"
)

# The same example as the page means it: straight double quotes, one record per line.
STRAIGHT_QUOTES = TYPOGRAPHIC.replace("\u201c", '"').replace("\u201d", '"').replace(" 0.8 ", " 0.8\n")


def test_typographic_example_is_copied_verbatim():
    """The constants hold the page's example (two records on one line, typographic quotes)."""
    assert TYPOGRAPHIC.count("\n") == 1 and TYPOGRAPHIC.count("\u201c") == 4
    assert STRAIGHT_QUOTES.count("\n") == 2 and "\u201c" not in STRAIGHT_QUOTES


# Labeled data -------------------------------------------------------------------------------------------


def test_labeled_text_gives_one_document_per_row_with_exact_labels(tmp_path):
    """`Hello!, greeting-english` ...: six text documents; the space after the comma is not part of a value."""
    out = run_prepare(tmp_path, LABELED_TEXT, "--is-labeled")
    assert documents(out) == sorted_docs([
        *text_documents("greeting-english", "Hello!", "Hi there.", "Good morning."),
        *text_documents("apologize-english", "I'm (\u2026) sorry!", "I'm sorry to have\u2026", "Please ... forgive me!"),
    ])
    table = pipelines.load_table(str(out))
    assert set(table.column("label").to_pylist()) == {"greeting-english", "apologize-english"}
    assert not any(t.startswith(" ") for t in table.column("text").to_pylist())
    assert pipelines.load_manifest(str(out))["layout"] == "labeled"


def test_labeled_image_paths_give_image_documents_with_uris(tmp_path):
    """Image paths and URLs with is_labeled=True and convert_to_blob off (the page's files do not exist
    here): five image documents, uri kept as written."""
    out = run_prepare(tmp_path, LABELED_IMAGES, "--is-labeled", "--no-convert-to-blob")
    table = pipelines.load_table(str(out))
    assert table.num_rows == 5
    assert set(table.column("modality").to_pylist()) == {"image"}
    assert table.column("text").null_count == 5
    assert sorted(zip(table.column("uri").to_pylist(), table.column("label").to_pylist())) == sorted([
        ("/Users/images/apples/green_apple.jpg", "picture of apple"),
        ("/Users/images/apples/red_apple.jpg", "picture of apple"),
        ("https://example.com/apple-styling.jpg", "picture of apple"),
        ("/Users/images/oranges/orange.jpg", "picture of orange"),
        ("https://example.com/orange-styling.jpg", "picture of orange"),
    ])


# Query-document relations ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def query_document_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("query_document")
    return run_prepare(tmp, QUERY_DOCUMENT)


def test_query_document_pairs_label_documents_with_their_query(query_document_run):
    """Each query and each document is a document labelled with the query's text; `Rice dishes` once."""
    assert documents(query_document_run) == sorted_docs([
        *text_documents("Rice dishes", "Rice dishes", "Chicken curry", "Ristto"),
        *text_documents("Pasta dishes", "Pasta dishes", "Spaghetti bolognese"),
        *text_documents("Vegetable dishes", "Vegetable dishes", "Ratitouille"),
    ])
    assert pipelines.load_manifest(str(query_document_run))["layout"] == "pairs"


def test_query_document_repeated_query_counts_as_one_duplicate(query_document_run):
    """`Rice dishes` appears on two rows: one duplicate removed, counts reconcile."""
    c = assert_reconciled(query_document_run)
    assert c.get("duplicates_removed", 0) == 1
    assert c["documents_written"] == 7
    assert c["candidate_documents"] == 8


def test_query_document_ellipsis_line_is_a_read_dead_letter(query_document_run):
    """The literal `...` line is a dead letter of the read stage at line 5; the other rows are documented."""
    dead = dead_letters(query_document_run)
    assert len(dead) == 1
    assert dead[0]["stage"] == "read"
    assert dead[0]["source_row"] == 5
    assert dead[0]["raw"].strip() == "..."
    assert dead[0]["reason"]
    c = counts(query_document_run)
    assert (c["rows_read"], c["rows_documented"], c["dead_letters"]) == (5, 4, 1)


# CLIP text-to-image -------------------------------------------------------------------------------------


def test_clip_rows_give_two_chunk_pair_documents_text_then_image(tmp_path):
    """Text, image path: one unlabelled 'pair' document per row, chunks [text, image] in column order,
    relative image paths kept as written (convert_to_blob off: the images do not exist)."""
    source = write_csv(tmp_path / "clip", CLIP)
    out = run_prepare(tmp_path, source, "--no-convert-to-blob")
    table = pipelines.load_table(str(out))
    assert table.num_rows == 2
    assert set(table.column("modality").to_pylist()) == {"pair"}
    assert table.column("label").null_count == 2
    by_text = {row["chunks"][0]["text"]: row["chunks"] for row in table.to_pylist()}
    assert set(by_text) == {"This is a photo of an apple.", "This is a black-white photo of an organge."}
    for text, image in [("This is a photo of an apple.", "apple.jpg"),
                        ("This is a black-white photo of an organge.", "orange.jpg")]:
        chunks = by_text[text]
        assert [c["modality"] for c in chunks] == ["text", "image"]
        assert chunks[1]["uri"] == image  # as the CSV wrote it, relative to the manifest's media_root
    assert pipelines.load_manifest(str(out))["media_root"] == str(source.parent)
    assert pipelines.load_manifest(str(out))["clip"] is True


def test_missing_images_are_dead_letters_when_loading(tmp_path):
    """With convert_to_blob on (the default) the page's CLIP rows name images that do not exist: each row is
    a media dead letter that names the missing file; counts reconcile."""
    source = write_csv(tmp_path / "clip", CLIP)
    out = run_prepare(tmp_path, source)
    dead = pipelines.load_dead_letters(str(out)).to_pylist()
    assert sorted((d["stage"], d["reason_class"], d["source_row"]) for d in dead) == [
        ("media", "missing", 1), ("media", "missing", 2)]
    assert all(str(source.parent) in d["reason"] for d in dead)
    assert pipelines.load_manifest(str(out))["reconciliation"]["reconciled"]


def test_clip_reversed_columns_give_image_then_text_chunks(tmp_path):
    """The page: the order does not matter if it is consistent; chunks follow the column order."""
    source = write_csv(tmp_path / "clip", CLIP_REVERSED)
    out = run_prepare(tmp_path, source, "--no-convert-to-blob")
    table = pipelines.load_table(str(out))
    assert table.num_rows == 2
    for row in table.to_pylist():
        assert row["modality"] == "pair" and row["label"] is None
        assert [c["modality"] for c in row["chunks"]] == ["image", "text"]
        assert row["chunks"][0]["uri"] in {"apple.jpg", "orange.jpg"}  # as the CSV wrote them
        assert row["chunks"][1]["text"] in {"This is a photo of an apple.", "This is a black-white photo of an organge."}


# Document similarity (scores) ------------------------------------------------------------------------------


def test_scores_rows_give_pair_documents_with_scores(tmp_path):
    """`The weather is nice, The weather is beautiful, 0.9`: two text-text pair documents, scores 0.9 and 0.0."""
    out = run_prepare(tmp_path, SCORES)
    assert documents(out) == sorted_docs([
        (None, 0.0, "pair", None, None, (("text", "The weather is nice", None), ("text", "The weather is bad", None))),
        (None, 0.9, "pair", None, None, (("text", "The weather is nice", None), ("text", "The weather is beautiful", None))),
    ])
    assert pipelines.load_manifest(str(out))["layout"] == "scores"


def test_scores_documents_load_with_finetuner_score_tags(tmp_path):
    """As docarray documents (the page's DocumentArray form): two chunks and tags {'finetuner_score': ...}."""
    out = run_prepare(tmp_path, SCORES)
    docs = sorted(pipelines.load_docs(str(out)), key=lambda d: d.tags["finetuner_score"])
    assert [d.tags for d in docs] == [{"finetuner_score": 0.0}, {"finetuner_score": 0.9}]
    assert [[c.text for c in d.chunks] for d in docs] == [
        ["The weather is nice", "The weather is bad"], ["The weather is nice", "The weather is beautiful"]]


def test_scores_with_straight_quotes_keep_commas_inside_texts(tmp_path):
    """The quoted-comma example with straight double quotes, one record per line: scores 0.8 and 0.1."""
    out = run_prepare(tmp_path, STRAIGHT_QUOTES)
    assert documents(out) == sorted_docs([
        (None, 0.1, "pair", None, None, (
            ("text", "If you\u2019re headed out, can you take out the garbage?", None),
            ("text", "I\u2019m going to have to take the trash out myself, aren\u2019t I?", None))),
        (None, 0.8, "pair", None, None, (
            ("text", "If we\u2019re ordering lunch, we should get pizza", None),
            ("text", "I want to order pizza for lunch", None))),
    ])
    assert dead_letters(out) == []


def test_typographic_quotes_line_in_scores_file_is_dead_letter_that_says_so(tmp_path):
    """The page's verbatim typographic-quote line after its weather rows (one scores file): the line is a
    dead letter whose reason mentions typographic quotes; the weather rows are still documents."""
    out = run_prepare(tmp_path, SCORES + TYPOGRAPHIC)
    dead = dead_letters(out)
    assert [d["source_row"] for d in dead] == [3]
    assert "typographic quotes" in dead[0]["reason"]
    assert len(documents(out)) == 2
    assert_reconciled(out)


def test_typographic_quotes_example_alone_tells_about_typographic_quotes(tmp_path, capsys):
    """The verbatim typographic-quote example on its own, read as the scores file the page says it is:
    the user learns that typographic quotes are the problem (a dead letter, or the one-line error)."""
    source = write_csv(tmp_path, TYPOGRAPHIC)
    out = tmp_path / "out"
    rc = main(["prepare", "--input", str(source), "--output", str(out), "--layout", "scores"])
    err = capsys.readouterr().err
    if rc == 0:
        reasons = [d["reason"] for d in dead_letters(out)]
        assert any("typographic quotes" in r for r in reasons), reasons
    else:
        assert "typographic quotes" in err, f"rc={rc}, stderr: {err.strip()}"
