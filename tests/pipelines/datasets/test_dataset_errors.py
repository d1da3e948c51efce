"""pipelines.datasets.dataset_errors: a dataset that cannot be read is one line on stderr and an exit code."""
import pytest

from pipelines.datasets.dataset_errors import DATASET_ERRORS, dataset_error, fail
from pipelines.datasets.load import DatasetChanging, load_manifest


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    return captured.err.rstrip("\n")


def test_fail_prints_the_message_and_returns_the_code(capsys):
    assert fail("--top 0 must be at least 1.") == 2
    assert one_line(capsys) == "finetune-etl: error: --top 0 must be at least 1."
    assert fail("it broke", 7) == 7
    assert one_line(capsys) == "finetune-etl: error: it broke"


def test_a_missing_dataset_is_exit_2_with_a_hint(tmp_path, capsys):
    with pytest.raises(DATASET_ERRORS) as caught:
        load_manifest(str(tmp_path))
    assert dataset_error(caught.value) == 2
    line = one_line(capsys)
    assert line.startswith(f"finetune-etl: error: {tmp_path} holds no complete dataset")
    assert line.endswith("Pass the --output folder of a finished `finetune-etl prepare` run.")


def test_a_dataset_that_keeps_changing_is_exit_1(capsys):
    assert dataset_error(DatasetChanging("gs://b/d kept changing while it was read; try again later.")) == 1
    assert one_line(capsys) == "finetune-etl: error: gs://b/d kept changing while it was read; try again later."


def test_the_errors_handled_are_a_missing_and_a_changing_dataset():
    assert set(DATASET_ERRORS) == {FileNotFoundError, DatasetChanging}
