"""`finetune-etl inspect`: what prepare would make of each file, run as the command a user types."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT, write_csv

from pipelines.prepare.command_line import prepare_parser
from pipelines.prepare.inspect import inspect_parser
from schemas.docarray_docs import TrainingDoc, docs_to_bytes

EXAMPLES = ROOT / "examples"


def inspect(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    """`finetune-etl inspect ARGS` through the command's dispatcher, in a child process."""
    return subprocess.run([sys.executable, "-c", "from pipelines.cli import entry; entry()", "inspect", *map(str, args)],
                          cwd=cwd, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_labeled_example_file_is_described_and_its_first_rows_shown_as_documents():
    result = inspect("--input", "examples/seed-labeled.csv", "--rows", "2")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "examples/seed-labeled.csv\n"
        "  dialect    comma-separated and a space after it (sniffed)\n"
        "  encoding   utf-8\n"
        '  header     no: first row "Hello!, greeting-english" is data (no cell is a column name, and none differs '
        "in kind from the rows below)\n"
        "  layout     labeled text rows (text, label): column 2 repeats like labels (6 distinct values in column 1 "
        "and 2 in column 2, of 6 rows); pass --layout pairs to read query-document pairs\n"
        "  columns    1 text, 2 label\n"
        "  rows       6 (the whole file, 203 bytes)\n"
        '  documents  line 1: text "Hello!" label "greeting-english"\n'
        '             line 2: text "Hi there." label "greeting-english"\n'
        "\n"
        "together: labeled text rows (text, label), about 6 rows from 1 CSV file\n")


def test_pairs_scores_and_clip_examples_show_the_documents_a_run_makes():
    result = inspect("--input", "examples/seed-pairs.csv", "--rows", "1")
    assert "  layout     query-document pairs (text, text): column 1 repeats like queries" in result.stdout
    assert "  columns    1 query (text), 2 document (text)\n" in result.stdout
    assert ('  documents  line 1: text "Rice dishes" label "Rice dishes"; text "Chicken curry" label "Rice dishes"\n'
            in result.stdout)
    scores = inspect("--input", "examples/seed-scores.csv", "--rows", "1").stdout
    assert ('  documents  line 1: pair [text "The weather is nice", text "The weather is beautiful"] score 0.9\n'
            in scores)
    clip = inspect("--input", "examples/clip.csv", "--rows", "1").stdout
    assert "  layout     CLIP pairs (text, image): column 2 holds image URIs, which are not labels\n" in clip
    assert ('  documents  line 1: pair [text "A portrait of Grace Hopper in uniform.", image images/hopper.jpg]\n'
            in clip)


def test_a_header_row_is_named_and_the_documents_start_below_it(tmp_path):
    write_csv(tmp_path, "image,label\nhopper.jpg,grace hopper\nflower.jpg,flower\nflower2.jpg,flower\n", "images.csv")
    result = inspect("--input", "images.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '  header     yes: first row "image,label" is a header (its cells are column names)\n' in result.stdout
    assert "  layout     labeled image rows (image, label): column 2 repeats like labels" in result.stdout
    assert ('  documents  line 2: image hopper.jpg label "grace hopper"\n'
            '             line 3: image flower.jpg label "flower"\n') in result.stdout


def test_rows_that_would_be_dead_letters_say_why(tmp_path):
    write_csv(tmp_path, "Hello, greeting\nBye, farewell, extra\nHi, greeting\n, greeting\n", "odd.csv")
    out = inspect("--input", "odd.csv", cwd=tmp_path).stdout
    assert ("line 2: dead letter (read, field_count): row has 3 fields but this run's rows have 2; enclose fields "
            "that contain ',' in double quotes\n") in out
    assert "line 4: dead letter (layout, empty_value): column 1 is empty\n" in out


def test_files_that_cannot_be_one_run_are_each_described_then_refused_in_one_line():
    result = inspect("--input", "examples/labeled-images.csv", "--input", "examples/clip.csv", "--rows", "0")
    assert result.returncode == 2
    assert "examples/labeled-images.csv\n" in result.stdout and "examples/clip.csv\n" in result.stdout
    assert "  layout     labeled image rows (image, label): column 2 repeats like labels" in result.stdout
    assert "  layout     CLIP pairs (text, image): column 2 holds image URIs" in result.stdout
    assert "together" not in result.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(
        "finetune-etl: error: the inputs need different layouts: examples/clip.csv looks like CLIP pairs")


def test_a_large_file_has_an_estimate_and_an_empty_one_says_it_has_no_rows(tmp_path):
    write_csv(tmp_path, "".join(f"sentence number {i:06},label {i % 10}\n" for i in range(10_000)), "big.csv")
    write_csv(tmp_path, "", "empty.csv")
    out = inspect("--input", "big.csv", "--rows", "0", cwd=tmp_path).stdout
    estimate = int(out.split("  rows       about ")[1].split(" ")[0].replace(",", ""))
    assert 9_000 <= estimate <= 11_000, out
    assert "(from the first 64 KiB of 310,000 bytes)" in out
    empty = inspect("--input", "empty.csv", cwd=tmp_path)
    assert "  header     no: the file has no rows\n" in empty.stdout and empty.returncode == 0


def test_docarray_inputs_are_listed(tmp_path):
    docs = tmp_path / "a.docs"
    docs.write_bytes(docs_to_bytes([TrainingDoc(modality="text", text="hi", tags={"finetuner_label": "a"})]))
    result = inspect("--input", docs, "--input", EXAMPLES / "seed-labeled.csv", "--rows", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"a.docs\n  docarray DocList ({docs.stat().st_size:,} bytes), read as it is\n" in result.stdout


@pytest.mark.parametrize("args, message", [
    ((), "the following arguments are required: --input"),
    (("--input", "missing.csv"), "does not exist"),
    (("--input", "examples/seed-pairs.csv", "--is-labeled", "--layout", "scores"), "--is-labeled contradicts"),
    (("--input", "examples/seed-pairs.csv", "--header", "maybe"), "invalid choice: 'maybe'"),
    (("--input", "examples/seed-pairs.csv", "--layout", "scores"), "--layout scores needs 3 columns"),
])
def test_configuration_mistakes_are_one_line_and_exit_2(args, message):
    result = inspect(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("finetune-etl: error: ")
    assert message in result.stderr


def test_it_takes_every_csv_option_of_prepare_with_the_same_default():
    """So a prepare command's reading options work unchanged (and a new one there fails here until added)."""
    prepare, ours = prepare_parser(), inspect_parser()
    group = next(g for g in prepare._action_groups if g.title.startswith("reading CSV"))
    ours_by_flag = {flag: action for action in ours._actions for flag in action.option_strings}
    for action in group._group_actions:
        for flag in action.option_strings:
            assert flag in ours_by_flag, flag
            assert (ours_by_flag[flag].default, ours_by_flag[flag].choices) == (action.default, action.choices), flag


def test_it_does_not_load_beam():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from pipelines.cli import main; "
         "main(['inspect', '--input', 'examples/seed-pairs.csv']); print('apache_beam' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert loaded.stdout.splitlines()[-1] == "False"
