"""What a run guesses when no flag says (issue 14): a header row, labeled or pairs, and files that disagree.
Each guess is printed before the run and recorded per file in manifest.json; a wrong one has a flag."""
import shutil

import pipelines
from conftest import ROOT, assert_reconciled, dead_letters, documents, run_prepare, sorted_docs, text_documents, \
    write_csv
from pipelines.cli import main

EXAMPLES = ROOT / "examples"


def test_a_query_document_header_is_skipped_not_made_a_document(tmp_path, capsys):
    """`query,document` as the first line, no --header: the documents of the rows below only."""
    out = run_prepare(tmp_path, "query,document\nRice dishes,Chicken curry\nRice dishes,Risotto\nPasta dishes,Spaghetti\n")
    assert documents(out) == sorted_docs([
        *text_documents("Rice dishes", "Rice dishes", "Chicken curry", "Risotto"),
        *text_documents("Pasta dishes", "Pasta dishes", "Spaghetti"),
    ])
    manifest = pipelines.load_manifest(str(out))
    [source] = manifest["inputs"]
    assert (source["header"], source["layout"], source["modalities"]) == (True, "pairs", ["text", "text"])
    assert source["why"]["header"] == "its cells are column names"
    assert source["why"]["layout"].startswith("column 1 repeats like queries")
    assert manifest["counts"]["header_rows"] == 1 and assert_reconciled(out)["rows_read"] == 3
    err = capsys.readouterr().err
    assert 'first row "query,document" read as a header (its cells are column names); pass --header no' in err


def test_an_image_csv_with_a_header_gives_image_documents_and_no_dead_letter(tmp_path):
    images = EXAMPLES / "images"
    out = run_prepare(tmp_path, f"image,label\n{images}/hopper.jpg,grace hopper\n{images}/hopper.png,grace hopper\n"
                                f"{images}/flower.jpg,flower\n{images}/flower2.jpg,flower\n")
    assert dead_letters(out) == []
    table = pipelines.load_table(str(out))
    assert sorted(zip(table.column("uri").to_pylist(), table.column("label").to_pylist())) == [
        (f"{images}/flower.jpg", "flower"), (f"{images}/flower2.jpg", "flower"),
        (f"{images}/hopper.jpg", "grace hopper"), (f"{images}/hopper.png", "grace hopper")]
    assert table.column("blob").null_count == 0
    [source] = pipelines.load_manifest(str(out))["inputs"]
    assert (source["header"], source["layout"], source["modalities"]) == (True, "labeled", ["image"])


def test_a_labeled_file_without_is_labeled_is_read_as_labeled_and_says_so(tmp_path, capsys):
    """Finetuner's labeled example without --is-labeled: the same documents (and ids) as with it, and a
    line that names the guess, its evidence and the flag for the other reading."""
    source = tmp_path / "seed-labeled.csv"
    shutil.copyfile(EXAMPLES / "seed-labeled.csv", source)
    guessed = run_prepare(tmp_path, source)
    err = capsys.readouterr().err
    told = run_prepare(tmp_path, source, "--is-labeled")
    assert documents(guessed, with_ids=True) == documents(told, with_ids=True)
    assert ("seed-labeled.csv: read as labeled text rows (text, label): column 2 repeats like labels (6 distinct "
            "values in column 1 and 2 in column 2, of 6 rows); pass --layout pairs to read query-document pairs") in err
    assert pipelines.load_manifest(str(guessed))["inputs"][0]["why"]["layout"].startswith("column 2 repeats like labels")
    assert "read as labeled" not in capsys.readouterr().err  # nothing said about what --is-labeled decided


def test_labeled_images_and_clip_pairs_are_refused_together(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["prepare", "--input", str(EXAMPLES / "labeled-images.csv"), "--input", str(EXAMPLES / "clip.csv"),
               "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "labeled-images.csv looks like labeled image rows (image, label)" in err
    assert "clip.csv looks like CLIP pairs (text, image)" in err
    assert not out.exists()


def test_files_of_one_layout_are_one_dataset_with_a_decision_each(tmp_path):
    first = write_csv(tmp_path, "Good night., greeting-english\nSee you!, farewell-english\n", "small.csv")
    second = tmp_path / "seed-labeled.csv"
    shutil.copyfile(EXAMPLES / "seed-labeled.csv", second)
    out = run_prepare(tmp_path, tmp_path / "*.csv", "--no-header")
    manifest = pipelines.load_manifest(str(out))
    assert manifest["layout"] == "labeled" and manifest["options"]["csv"]["header"] == "no"
    assert [(i["url"], i["layout"], i["why"]["header"]) for i in manifest["inputs"]] == [
        (str(second), "labeled", "--header no"), (str(first), "labeled", "--header no")]
    assert manifest["inputs"][1]["why"]["layout"].endswith("; read as labeled like the other inputs")
    assert len(documents(out)) == 8
