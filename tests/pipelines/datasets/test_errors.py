"""`finetune-etl errors`: listing and filtering dead letters, and --retry files that re-run once fixed."""
import json
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, assert_reconciled, dead_letters, documents, run_prepare, write_csv
from pipelines.cli import main

IMAGES = ROOT / "examples" / "images"

# Labeled images, 1-based lines: 3 names an image that does not exist yet, 4 a file that is not an image,
# 5 has a field too many, 6 an empty label. Paths are relative to the CSV's folder.
LABELED = (
    "images/hopper.jpg, grace hopper\n"
    "images/flower.jpg, flower\n"
    "images/later.jpg, flower\n"
    "images/broken.jpg, apple\n"
    "images/apple.png, apple, red\n"
    "images/hopper_gray.jpg, \n"
)


def errors(capsys, *args: str) -> dict:
    """Run `finetune-etl errors ... --json` in-process; returns the JSON it printed."""
    capsys.readouterr()
    assert main(["errors", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def rerun(command: str, output: Path) -> Path:
    """Run a printed `finetune-etl prepare` command in-process, writing to `output` instead."""
    args = shlex.split(command)
    assert args[:2] == ["finetune-etl", "prepare"]
    args[args.index("--output") + 1] = str(output)
    assert main(args[1:]) == 0
    return output


@pytest.fixture
def labeled(tmp_path) -> Path:
    """A prepared dataset of LABELED (in tmp_path/data) with four dead letters, one per stage and cause."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    for name in ("hopper.jpg", "flower.jpg", "apple.png", "hopper_gray.jpg"):
        shutil.copy(IMAGES / name, data / "images" / name)
    (data / "images" / "broken.jpg").write_bytes(b"this is not a jpeg")
    out = run_prepare(tmp_path, write_csv(data, LABELED, "train.csv"), "--is-labeled")
    assert [(d["source_row"], d["stage"]) for d in dead_letters(out)] == [(3, "media"), (4, "media"), (5, "read"), (6, "layout")]
    return out


def test_lists_and_filters(labeled, capsys):
    everything = errors(capsys, str(labeled))
    assert everything["total"] == everything["matched"] == 4 and everything["retry"] is None
    assert [d["source_row"] for d in everything["listed"]] == [3, 4, 5, 6]
    assert [d["source_row"] for d in errors(capsys, str(labeled), "--stage", "media")["listed"]] == [3, 4]
    assert [d["source_row"] for d in errors(capsys, str(labeled), "--reason-class", "field_count")["listed"]] == [5]
    assert [d["source_row"] for d in errors(capsys, str(labeled), "--grep", "LATER.JPG")["listed"]] == [3]
    assert errors(capsys, str(labeled), "--stage", "media", "--grep", "field")["matched"] == 0
    limited = errors(capsys, str(labeled), "--limit", "1")
    assert limited["matched"] == 4 and len(limited["listed"]) == 1


def test_table_on_the_terminal(labeled, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich's width when stdout is not a terminal: wide enough for the temporary paths
    assert main(["errors", str(labeled), "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "Dead letters: 4" in out and "the first 3 listed" in out
    assert "field_count" in out and "later.jpg" in out
    assert main(["errors", str(labeled), "--stage", "nope"]) == 0
    assert "the stages here are layout, media, read" in capsys.readouterr().out


def test_retry_file_reruns_once_fixed(labeled, tmp_path, capsys):
    retry_csv = tmp_path / "elsewhere" / "retry.csv"  # another folder: relative image paths must still work
    capsys.readouterr()
    assert main(["errors", str(labeled), "--retry", str(retry_csv)]) == 0
    printed = capsys.readouterr().out
    assert "Wrote 4 rows" in printed
    command = printed.strip().splitlines()[-1].strip()
    assert command.startswith(f"finetune-etl prepare --input {retry_csv}") and "--layout labeled" in command
    images = tmp_path / "data" / "images"
    assert retry_csv.read_text(encoding="utf-8").splitlines() == [
        f"{images}/later.jpg,flower",
        f"{images}/broken.jpg,apple",
        f"{images}/apple.png,apple,red",
        f"{images}/hopper_gray.jpg,",
    ]
    # Fix the causes: create the missing image, replace the broken one, fix the two text rows.
    shutil.copy(IMAGES / "flower.jpg", images / "later.jpg")
    shutil.copy(IMAGES / "hopper.jpg", images / "broken.jpg")
    fixed = retry_csv.read_text(encoding="utf-8").replace("apple,red", '"apple, red"').replace("gray.jpg,", "gray.jpg,grace hopper")
    retry_csv.write_text(fixed, encoding="utf-8")
    out = rerun(command, tmp_path / "retried")
    assert dead_letters(out) == []
    assert_reconciled(out)
    assert [(label, modality, uri) for label, _, modality, _, uri, _ in documents(out)] == [
        ("apple", "image", f"{images}/broken.jpg"),
        ("apple, red", "image", f"{images}/apple.png"),
        ("flower", "image", f"{images}/later.jpg"),
        ("grace hopper", "image", f"{images}/hopper_gray.jpg"),
    ]


def test_retry_keeps_tabs_and_header_of_scored_pairs(tmp_path, capsys):
    rows = ["first\tsecond\tscore", "a cat\ta kitten\t0.9", "a dog\ta car\t7", "sun\tmoon\tnone", "sea\tocean\t1"]
    out = run_prepare(tmp_path, "\n".join(rows) + "\n", "--layout", "scores", "--header")
    assert [(d["source_row"], d["reason_class"]) for d in dead_letters(out)] == [(3, "score"), (4, "score")]
    retry_csv = tmp_path / "retry.tsv"
    result = errors(capsys, str(out), "--retry", str(retry_csv))["retry"]
    assert result["rows"] == 2 and result["not_retryable"] == []
    assert retry_csv.read_text(encoding="utf-8") == "first\tsecond\tscore\na dog\ta car\t7\nsun\tmoon\tnone\n"
    assert "--header" in result["command"] and "--dialect excel-tab" in result["command"]
    retry_csv.write_text(retry_csv.read_text(encoding="utf-8").replace("\t7", "\t0.7").replace("none", "0.2"), encoding="utf-8")
    again = rerun(result["command"], tmp_path / "retried")
    assert dead_letters(again) == []
    assert sorted((c[0][1], c[1][1], score) for _, score, _, _, _, c in documents(again)) == [
        ("a dog", "a car", 0.7), ("sun", "moon", 0.2)]


def test_clip_media_row_is_read_again_whole(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    shutil.copy(IMAGES / "apple.png", data / "images" / "apple.png")
    source = write_csv(data, '"An apple, red.",images/apple.png\n"A pear, green.",images/pear.png\n', "clip.csv")
    out = run_prepare(tmp_path, source, "--layout", "pairs")
    assert [(d["source_row"], d["raw"]) for d in dead_letters(out)] == [(2, '"A pear, green.",images/pear.png')]
    retry_csv = tmp_path / "retry.csv"
    result = errors(capsys, str(out), "--retry", str(retry_csv))["retry"]
    assert retry_csv.read_text(encoding="utf-8") == f'"A pear, green.",{data}/images/pear.png\n'
    assert "--modalities text,image" in result["command"]
    shutil.copy(IMAGES / "apple.png", data / "images" / "pear.png")
    again = rerun(result["command"], tmp_path / "retried")
    assert dead_letters(again) == []
    assert [c for *_, c in documents(again)] == [(("text", "A pear, green.", None), ("image", None, f"{data}/images/pear.png"))]


def test_rows_that_cannot_be_written_again_are_listed(tmp_path, capsys):
    source = write_csv(tmp_path, b"caf\xe9 au lait, drinks\ntea, drinks\n", "latin.csv")
    out = run_prepare(tmp_path, source, "--is-labeled")
    assert [d["reason_class"] for d in dead_letters(out)] == ["encoding"]
    result = errors(capsys, str(out), "--retry", str(tmp_path / "retry.csv"))["retry"]
    assert result["rows"] == 0 and result["file"] is None and not (tmp_path / "retry.csv").exists()
    (why,) = result["not_retryable"]
    assert why["source_row"] == 1 and "not valid utf-8" in why["why"]
    capsys.readouterr()
    assert main(["errors", str(out), "--retry", str(tmp_path / "retry.csv")]) == 0
    printed = capsys.readouterr().out
    assert "Not retryable: 1" in printed and "was not written" in printed


def test_media_rows_are_written_again_after_their_csv_is_gone(tmp_path, capsys):
    """A media dead letter keeps its CSV row: the retry file does not need the CSV any more."""
    source = write_csv(tmp_path, b"images/gone.jpg, things\nimages/none.jpg, things\n", "media.csv")
    out = run_prepare(tmp_path, source, "--layout", "labeled", "--modalities", "image")
    assert [(d["reason_class"], d["raw"]) for d in dead_letters(out)] == [
        ("missing", "images/gone.jpg,things"), ("missing", "images/none.jpg,things")]
    source.unlink()
    retry_csv = tmp_path / "retry.csv"
    result = errors(capsys, str(out), "--retry", str(retry_csv))["retry"]
    assert result["rows"] == 2 and result["not_retryable"] == []
    assert retry_csv.read_text(encoding="utf-8") == (
        f"{tmp_path}/images/gone.jpg,things\n{tmp_path}/images/none.jpg,things\n")


def test_missing_dataset_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["errors", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finetune-etl: error: ") and "no complete dataset" in err and len(err.strip().splitlines()) == 1


def test_advice_is_to_fix_the_causes_and_run_the_same_job_again_incrementally(labeled, tmp_path, capsys):
    capsys.readouterr()
    assert main(["errors", str(labeled)]) == 0
    advice = " ".join(capsys.readouterr().out.split())  # as one line, whatever the terminal's width
    assert f"run the same `finetune-etl prepare` command again with --incremental-from {labeled} --overwrite" in advice
    images = tmp_path / "data" / "images"
    shutil.copy(IMAGES / "hopper_gray.jpg", images / "later.jpg")  # the media causes fixed; the CSV's two rows not
    shutil.copy(IMAGES / "hopper.jpg", images / "broken.jpg")
    again = ["prepare", "--input", str(tmp_path / "data" / "train.csv"), "--output", str(labeled), "--is-labeled"]
    assert main([*again, "--incremental-from", str(labeled), "--overwrite"]) == 0
    assert [(d["source_row"], d["stage"]) for d in dead_letters(labeled)] == [(5, "read"), (6, "layout")]
    assert assert_reconciled(labeled)["documents_reused"] == 2
    assert sorted(uri.rsplit("/", 1)[1] for *_, uri, _ in documents(labeled)) == [
        "broken.jpg", "flower.jpg", "hopper.jpg", "later.jpg"]
