"""Configuration mistakes stop `python -m pipelines.prepare` with one line on stderr and no traceback."""
import subprocess
import sys

import pytest
from conftest import ROOT

import pipelines

PAIRS = "Rice dishes,Chicken curry\nPasta dishes,Spaghetti\n"
SCORES = "The weather is nice,The weather is beautiful,0.9\nThe weather is nice,The weather is bad,0\n"


def prepare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.prepare", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def assert_config_error(result: subprocess.CompletedProcess) -> str:
    """Non-zero exit, exactly one stderr line `finetune-etl: error: ...`, no traceback; returns the line."""
    lines = result.stderr.splitlines()
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("finetune-etl: error:"), result.stderr
    return lines[0]


@pytest.fixture
def pairs_csv(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(PAIRS)
    return path


def test_empty_glob(tmp_path):
    line = assert_config_error(prepare("--input", tmp_path / "nothing-*.csv", "--output", tmp_path / "out"))
    assert "nothing-*.csv" in line


def test_missing_file(tmp_path):
    line = assert_config_error(prepare("--input", tmp_path / "missing.csv", "--output", tmp_path / "out"))
    assert "missing.csv" in line


def test_unwritable_output_under_a_regular_file(tmp_path, pairs_csv):
    """--output below a regular file cannot be created."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_config_error(prepare("--input", pairs_csv, "--output", blocker / "out"))
    assert blocker.read_text() == "not a folder"


def test_is_labeled_contradicts_layout_scores(tmp_path, pairs_csv):
    line = assert_config_error(prepare("--input", pairs_csv, "--output", tmp_path / "out",
                                       "--is-labeled", "--layout", "scores"))
    assert "--is-labeled" in line


def test_layout_scores_on_two_column_file(tmp_path, pairs_csv):
    line = assert_config_error(prepare("--input", pairs_csv, "--output", tmp_path / "out", "--layout", "scores"))
    assert "scores" in line


def test_sampling_rate_above_one(tmp_path, pairs_csv):
    line = assert_config_error(prepare("--input", pairs_csv, "--output", tmp_path / "out", "--sampling-rate", "2"))
    assert "--sampling-rate" in line


def test_unknown_option_is_an_error(tmp_path, pairs_csv):
    """An option neither finetune-etl nor Beam knows, such as Finetuner's own spelling `--is_labeled`,
    stops the run instead of being dropped (which would silently read the file as pairs)."""
    out = tmp_path / "out"
    result = prepare("--input", pairs_csv, "--output", out, "--is_labeled")
    assert result.returncode != 0, f"ran anyway: {result.stdout.strip()}"
    assert_config_error(result)
    assert not (out / "_SUCCESS").exists()


def test_config_error_writes_nothing(tmp_path, pairs_csv):
    """A configuration error leaves no dataset behind (no _SUCCESS, no manifest)."""
    out = tmp_path / "out"
    assert_config_error(prepare("--input", pairs_csv, "--output", out, "--layout", "scores"))
    assert not (out / "_SUCCESS").exists() and not (out / "manifest.json").exists()


def test_existing_complete_output_needs_overwrite(tmp_path):
    """A second run into a complete dataset fails without --overwrite and succeeds with it: the new
    dataset replaces the old one entirely (no stale shards of the first run remain)."""
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(PAIRS)
    second.write_text(SCORES)
    out = tmp_path / "out"
    done = prepare("--input", first, "--output", out, "--shard-rows", "1")
    assert done.returncode == 0, done.stderr
    assert (out / "_SUCCESS").exists()
    assert len(list((out / "documents").glob("*.parquet"))) == 4

    line = assert_config_error(prepare("--input", second, "--output", out))
    assert "--overwrite" in line

    replaced = prepare("--input", second, "--output", out, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert "Traceback" not in replaced.stderr
    manifest = pipelines.load_manifest(str(out))
    assert manifest["layout"] == "scores"
    assert manifest["counts"]["documents_written"] == 2
    assert pipelines.load_table(str(out)).num_rows == 2
    assert [p.name for p in (out / "documents").iterdir()] == ["part-00000-of-00001.parquet"]
    assert not list(out.glob("_staging-*"))


def test_files_of_different_widths_need_a_layout(tmp_path, pairs_csv):
    scores = tmp_path / "scores.csv"
    scores.write_text(SCORES)
    line = assert_config_error(prepare("--input", pairs_csv, "--input", scores, "--output", tmp_path / "out"))
    assert "same number of columns" in line and "--layout" in line


def test_a_file_that_does_not_fit_the_layout_becomes_dead_letters(tmp_path, pairs_csv):
    """With --layout given, a file of another width does not stop the run: its rows are dead letters."""
    scores = tmp_path / "scores.csv"
    scores.write_text(SCORES)
    out = tmp_path / "out"
    result = prepare("--input", pairs_csv, "--input", scores, "--layout", "pairs", "--output", out)
    assert result.returncode == 0, result.stderr
    manifest = pipelines.load_manifest(str(out))
    assert manifest["counts"]["rows_read"] == 4 and manifest["reconciliation"]["reconciled"]
    dead = pipelines.load_dead_letters(str(out)).to_pylist()
    assert [(d["source_file"].rsplit("/", 1)[-1], d["source_row"], d["reason_class"]) for d in dead] == [
        ("scores.csv", 1, "field_count"), ("scores.csv", 2, "field_count")]
    assert "row has 3 fields but this run's rows have 2" in dead[0]["reason"]


@pytest.mark.parametrize("text,size", [("4096", 4096), ("64M", 64 << 20), ("2G", 2 << 30), ("1.5g", 3 << 29),
                                       ("512KiB", 512 << 10), ("8kb", 8 << 10)])
def test_sizes_take_units(text, size):
    from pipelines.prepare.command_line import prepare_parser

    args = prepare_parser().parse_args(["--max-record-bytes", text, "--decode-memory", text])
    assert args.max_record_bytes == size and args.decode_memory == size


def test_a_size_that_is_not_one_is_a_configuration_mistake(tmp_path, pairs_csv):
    result = prepare("--input", pairs_csv, "--output", tmp_path / "out", "--range-bytes", "lots")
    assert result.returncode == 2 and "'LOTS' is not a size; write e.g. 4096, 64M or 2G" in result.stderr


def test_negative_progress_interval(tmp_path, pairs_csv):
    line = assert_config_error(prepare("--input", pairs_csv, "--output", tmp_path / "out", "--progress-every", "-1"))
    assert "--progress-every -1.0 must be 0" in line


@pytest.mark.parametrize("flag,value", [("--dialect", "tsv"), ("--format", "csv"), ("--shard-rows", "many")])
def test_a_bad_option_value_is_one_line_without_usage(tmp_path, pairs_csv, flag, value):
    line = assert_config_error(prepare("--input", pairs_csv, "--output", tmp_path / "out", flag, value))
    assert f"argument {flag}: invalid" in line and "`finetune-etl prepare --help` lists the options" in line


def test_a_run_with_dead_letters_ends_with_their_count_and_the_command_that_lists_them(tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("a,x\nb\nc,y\nd,z,extra\n")
    out = tmp_path / "out"
    result = prepare("--input", data, "--is-labeled", "--output", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"finetune-etl: wrote 2 documents (labeled layout) to {out}"
    assert lines[-1] == (f"finetune-etl: 2 dead letters (rows or media that could not be used, each with its "
                         f"reason); list them with: finetune-etl errors {out}")
