"""pipelines.prepare.run: a run returns its manifest and leaves no staging; a failed run leaves nothing new."""
import os

import fsspec
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

import pipelines
from conftest import write_csv
from pipelines.datasets.load import load_manifest
from pipelines.prepare.job import plan_job
from pipelines.prepare.run import SMALL_MEDIA_ROWS, SMALL_TEXT_ROWS, discard_staging, local_mode, local_runner, run
from schemas.options import CSVOptions, OutputOptions, ReadTuning
from transforms.storage import write_bytes

PAIRS = "How old are you?,What is your age?\nHi,Hello\n"


def planned(tmp_path, text: str = PAIRS, overwrite: bool = False):
    source = write_csv(tmp_path, text, "pairs.csv")
    return plan_job([str(source)], CSVOptions(), OutputOptions(str(tmp_path / "out"), overwrite=overwrite), ReadTuning())


def leftovers(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if "staging" in p.name)


def test_run_returns_the_manifest_and_leaves_no_staging(tmp_path):
    job = planned(tmp_path)
    assert leftovers(tmp_path) == [f".out.staging-{job.run_id}"]  # the launcher's write probe
    manifest = run(job, ["--runner=DirectRunner", "--direct_num_workers=1"])
    assert manifest == load_manifest(str(tmp_path / "out"))
    assert manifest["run_id"] == job.run_id and manifest["counts"]["documents_written"] == 4
    assert leftovers(tmp_path) == [] and not list((tmp_path / "out").glob("_staging-*"))


def test_a_failed_run_raises_and_leaves_no_staging_and_no_dataset(tmp_path):
    job = planned(tmp_path)
    (tmp_path / "pairs.csv").unlink()  # gone between planning and reading
    with pytest.raises(Exception, match="pairs.csv"):
        run(job, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_overwrite_keeps_the_dataset_already_there(tmp_path):
    first = run(planned(tmp_path), [])
    job = planned(tmp_path, "one,two\n", overwrite=True)
    (tmp_path / "pairs.csv").unlink()
    with pytest.raises(Exception):
        run(job, [])
    assert load_manifest(str(tmp_path / "out")) == first and leftovers(tmp_path) == []


def test_discard_staging_removes_everything_staged(tmp_path):
    staging = tmp_path / ".out.staging-x"
    write_bytes(b"x", str(staging / "documents" / "part.parquet"))
    discard_staging(str(staging))
    assert not staging.exists()
    url = f"memory://discard-{tmp_path.name}/out/_staging-x"
    write_bytes(b"x", f"{url}/a/b.bin")
    write_bytes(b"y", f"memory://discard-{tmp_path.name}/out/manifest.json")
    discard_staging(url)
    memory = fsspec.filesystem("memory")
    assert memory.ls(f"/discard-{tmp_path.name}/out", detail=False) == [f"/discard-{tmp_path.name}/out/manifest.json"]


def test_discard_staging_of_nothing_is_fine(tmp_path):
    discard_staging(str(tmp_path / "never-made"))
    discard_staging(f"memory://discard-none-{tmp_path.name}/_staging-x")


@pytest.mark.parametrize("args", [[], ["--runner=DirectRunner"], ["--runner", "direct"]])
def test_local_runner_is_the_fn_api_runner_for_the_direct_runner(args):
    assert isinstance(local_runner(PipelineOptions(args)), FnApiRunner)


@pytest.mark.parametrize("runner", ["DataflowRunner", "PrismRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"])
def test_local_runner_is_none_for_other_runners(runner):
    assert local_runner(PipelineOptions([f"--runner={runner}"])) is None


THREADS = ["--direct_running_mode=multi_threading", f"--direct_num_workers={os.cpu_count() or 1}"]
IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


@pytest.mark.parametrize("rows, mode", [(4, IN_PROCESS), (SMALL_TEXT_ROWS - 100, IN_PROCESS),
                                        (SMALL_TEXT_ROWS + 500, THREADS)])
def test_a_small_text_input_runs_in_process_and_a_larger_one_on_a_thread_per_core(tmp_path, rows, mode):
    text = "".join(f"question {i:06d},answer {i:06d}\n" for i in range(rows))
    job = planned(tmp_path, text)
    assert local_mode(job) == mode


@pytest.mark.parametrize("rows, mode", [(10, IN_PROCESS), (SMALL_MEDIA_ROWS + 100, THREADS)])
def test_media_runs_leave_the_in_process_worker_sooner(tmp_path, rows, mode):
    text = "".join(f"photos/p{i:06d}.jpg,label {i % 7}\n" for i in range(rows))
    job = planned(tmp_path, text)
    assert job.loads_media and local_mode(job) == mode


def test_a_run_in_process_gives_the_documents_of_a_run_on_threads(tmp_path):
    source = str(write_csv(tmp_path, PAIRS + "Hi,Hey\nbroken\n", "pairs.csv"))
    manifests, tables = [], []
    for name, beam_args in (("in-process", []), ("threads", THREADS)):
        job = plan_job([source], CSVOptions(), OutputOptions(str(tmp_path / name)), ReadTuning())
        manifests.append(run(job, beam_args))
        tables.append(pipelines.load_table(str(tmp_path / name)))
    assert manifests[0]["counts"] == manifests[1]["counts"] and manifests[0]["counts"]["dead_letters"] == 1
    assert tables[0].num_rows == 5 and tables[0].equals(tables[1])
