"""pipelines.prepare_dataset: the prepare job from Python, options named as on the command line."""
import pytest

from conftest import ROOT
from pipelines import load_manifest, load_table, prepare_dataset
from schemas.options import ConfigError

SEED_LABELED = str(ROOT / "examples" / "seed-labeled.csv")


def test_it_runs_the_job_and_returns_the_manifest(tmp_path):
    out = tmp_path / "seed"
    manifest = prepare_dataset(inputs=[SEED_LABELED], output=str(out), is_labeled=True, format="parquet",
                               shard_rows=5)
    assert manifest == load_manifest(str(out))
    assert manifest["layout"] == "labeled" and manifest["reconciliation"]["reconciled"]
    table = load_table(str(out))
    assert table.num_rows == manifest["counts"]["documents_written"] > 0
    assert not list(out.glob("docarray/*")), "format='parquet' was not applied"
    assert len(list(out.glob("documents/*.parquet"))) > 1, "shard_rows=5 was not applied"


def test_the_same_run_from_python_and_from_the_command_line_gives_the_same_documents(tmp_path):
    import subprocess
    import sys

    prepare_dataset(SEED_LABELED, str(tmp_path / "api"), is_labeled=True)
    subprocess.run([sys.executable, "-m", "pipelines.prepare", "--input", SEED_LABELED, "--is-labeled",
                    "--output", str(tmp_path / "cli")], cwd=ROOT, check=True, capture_output=True)
    assert load_table(str(tmp_path / "api")).equals(load_table(str(tmp_path / "cli")))


@pytest.mark.parametrize("options,message", [
    ({"dialect": "tsv"}, "argument --dialect: invalid choice: 'tsv'"),
    ({"is_labelled": True}, "unknown or misplaced options: is_labelled"),
    ({"input": ["x.csv"]}, "unknown or misplaced options: input"),
    ({"sampling_rate": 2.0}, "--sampling-rate 2.0 must be in (0, 1]"),
])
def test_a_configuration_mistake_raises_one_sentence_before_any_work(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        prepare_dataset(SEED_LABELED, str(tmp_path / "out"), **options)
    assert not (tmp_path / "out").exists()


def test_beam_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="--runnr"):
        prepare_dataset(SEED_LABELED, str(tmp_path / "out"), beam_args=["--runnr=DirectRunner"])
