"""A run replaces only what it wrote: --output must hold nothing but our dataset, checked before the run
and again at the commit, so user files survive and two runs on one new folder cannot both publish."""
import subprocess
import sys
import uuid

import pytest

from conftest import ROOT, run_prepare, write_csv
from schemas.options import ConfigError
from transforms.output_folder import OutputTaken, check_replaceable, foreign_entries
from transforms.storage import filesystem, join_url

LABELED = "a,x\nb,y\nc,x\n"


def prepare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.prepare", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("finetune-etl: error:")]


def test_a_dataset_of_ours_has_no_foreign_entries(tmp_path):
    out = run_prepare(tmp_path, LABELED, "--is-labeled")
    assert foreign_entries(str(out)) == []
    check_replaceable(str(out), overwrite=True)
    with pytest.raises(OutputTaken, match="already holds a complete dataset"):
        check_replaceable(str(out), overwrite=False)


def test_a_missing_or_empty_output_is_replaceable(tmp_path):
    (tmp_path / "empty").mkdir()
    for output in (tmp_path / "missing", tmp_path / "empty"):
        assert foreign_entries(str(output)) == []
        check_replaceable(str(output), overwrite=False)


def test_files_not_listed_by_the_manifest_are_foreign_even_inside_our_folders(tmp_path):
    out = run_prepare(tmp_path, LABELED, "--is-labeled")
    (out / "documents" / "notes.txt").write_text("mine")
    (out / "README.txt").write_text("mine too")
    assert foreign_entries(str(out)) == ["README.txt", "documents/notes.txt"]
    with pytest.raises(ConfigError, match="documents/notes.txt"):
        check_replaceable(str(out), overwrite=True)


def test_the_dataset_card_is_ours_only_beside_a_manifest(tmp_path):
    out = run_prepare(tmp_path, LABELED, "--is-labeled")
    assert (out / "README.md").exists() and foreign_entries(str(out)) == []
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("the user's own notes")
    assert foreign_entries(str(notes)) == ["README.md"]


def test_on_object_stores_the_files_of_versions_are_ours_and_nothing_else_there():
    out = f"memory://output-folder-{uuid.uuid4().hex}/out"
    fs, path = filesystem(out)
    ours = ["versions/R1/manifest.json", "versions/R1/README.md", "versions/R1/documents/b00000-0000.parquet",
            "versions/R2/dead_letters/empty.parquet", "_staging-R2/spill/all/x.arrow"]
    foreign = ["versions/notes.txt", "versions/R1/notes.txt", "versions/R1/documents/deeper/x.parquet",
               "versions/R1/images/b00000-0000.parquet"]
    for name in ours + foreign:
        fs.pipe(join_url(path, name), b"x")
    try:
        assert foreign_entries(out) == sorted(foreign)
    finally:
        fs.rm(path, recursive=True)


def test_a_local_output_has_no_versions(tmp_path):
    (tmp_path / "out" / "versions" / "R1").mkdir(parents=True)
    (tmp_path / "out" / "versions" / "R1" / "manifest.json").write_text("{}")
    assert foreign_entries(str(tmp_path / "out")) == ["versions/R1/manifest.json"]


def test_a_user_file_under_output_stops_the_run_and_survives(tmp_path):
    data = write_csv(tmp_path, LABELED)
    out = tmp_path / "out"
    (out / "documents").mkdir(parents=True)
    (out / "documents" / "notes.txt").write_text("notes")
    result = prepare("--input", data, "--is-labeled", "--output", out)
    assert result.returncode == 2
    assert len(error_lines(result)) == 1 and "documents/notes.txt" in error_lines(result)[0]
    assert "Traceback" not in result.stderr
    assert (out / "documents" / "notes.txt").read_text() == "notes"


def test_the_run_s_own_input_inside_output_is_never_deleted(tmp_path):
    out = tmp_path / "out"
    data = write_csv(out / "documents", LABELED, "in.csv")
    for extra in ((), ("--overwrite",)):
        result = prepare("--input", data, "--is-labeled", "--output", out, *extra)
        assert result.returncode == 2, result.stderr
        assert data.read_text() == LABELED


def test_two_runs_on_one_new_output_one_publishes_and_the_other_says_so_in_one_line(tmp_path):
    data = write_csv(tmp_path, "".join(f"row {i},label {i % 7}\n" for i in range(2000)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipelines.prepare", "--input", str(data), "--is-labeled", "--output", str(out)]
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(stderr for code, stderr in results if code == 2)
    assert [line for line in loser.splitlines() if line.startswith("finetune-etl: error:")] == [loser.strip().splitlines()[-1]]
    # Refused at the commit's check (the winner had published) or at its rename (both passed the check).
    assert ("already holds a complete dataset" in loser or "received a dataset from another run" in loser), loser
    assert "Traceback" not in loser
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.csv", "out"], "a staging folder was left behind"
    assert foreign_entries(str(out)) == []
