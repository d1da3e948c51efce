"""Publishing a dataset: atomic replacement, snapshot reads, killed runs, dated outputs."""
import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import pipelines
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]


def write_pairs(path: Path, rows: int, seed: int) -> Path:
    """A query,document CSV with `rows` rows; queries repeat every 7 rows."""
    lines = (f"query {seed}-{i // 7} about things,document {seed}-{i} with, a comma\n" for i in range(rows))
    path.write_text("".join(f'{q},"{d}"\n' for q, d in (line.rstrip("\n").split(",", 1) for line in lines)))
    return path


def ids(out: Path) -> frozenset:
    return frozenset(pipelines.load_table(str(out)).column("id").to_pylist())


def test_overwrite_replaces_the_whole_dataset(tmp_path):
    out = tmp_path / "out"
    assert main(["prepare", "--input", str(write_pairs(tmp_path / "a.csv", 50, 1)), "--output", str(out),
                 "--shard-rows", "10"]) == 0
    first = pipelines.load_manifest(str(out))
    assert main(["prepare", "--input", str(write_pairs(tmp_path / "b.csv", 20, 2)), "--output", str(out),
                 "--overwrite"]) == 0
    second = pipelines.load_manifest(str(out))
    assert second["run_id"] != first["run_id"]
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    listed = sorted(s["path"] for kind in ("documents", "dead_letters") for s in second["shards"][kind])
    assert on_disk == listed, "shards of the previous run are left behind"
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


def test_readers_see_one_run_or_the_other(tmp_path):
    """While runs replace the dataset again and again, every read returns exactly one run's documents."""
    out = tmp_path / "out"
    inputs = [write_pairs(tmp_path / f"{n}.csv", 400, n) for n in range(2)]
    assert main(["prepare", "--input", str(inputs[0]), "--output", str(out), "--shard-rows", "50"]) == 0
    expected = {ids(out)}
    reads, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            reads.append(ids(out))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in (1, 0, 1):
            assert main(["prepare", "--input", str(inputs[n]), "--output", str(out), "--shard-rows", "50",
                         "--overwrite"]) == 0
            expected.add(ids(out))
    finally:
        stop.set()
        thread.join()
    assert len(expected) == 2 and len(reads) > 3
    assert all(r in expected for r in reads)


def test_killed_run_leaves_the_previous_dataset_and_the_next_run_succeeds(tmp_path):
    out = tmp_path / "out"
    small, big = write_pairs(tmp_path / "small.csv", 30, 1), write_pairs(tmp_path / "big.csv", 150_000, 2)
    assert main(["prepare", "--input", str(small), "--output", str(out)]) == 0
    before = pipelines.load_manifest(str(out))
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.prepare", "--input", str(big), "--output", str(out), "--overwrite",
         "--range-bytes", "2000000", "--batch-rows", "20000"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.staging-*/spill/*/*.arrow")):
        assert job.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert pipelines.load_manifest(str(out))["run_id"] == before["run_id"]
    assert pipelines.load_table(str(out)).num_rows == before["counts"]["documents_written"]
    assert main(["prepare", "--input", str(big), "--output", str(out), "--overwrite"]) == 0
    after = pipelines.load_manifest(str(out))
    assert after["counts"]["rows_read"] == 150_000 and after["reconciliation"]["reconciled"]
    assert pipelines.load_table(str(out)).num_rows == after["counts"]["documents_written"]


def test_output_placeholders_make_dated_partitions(tmp_path):
    source = write_pairs(tmp_path / "a.csv", 10, 1)
    assert main(["prepare", "--input", str(source), "--output", str(tmp_path / "nightly" / "{date}" / "{run_id}")]) == 0
    (day,) = (tmp_path / "nightly").iterdir()
    assert day.name == datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    (run,) = day.iterdir()
    assert pipelines.load_manifest(str(run))["run_id"] == run.name


def test_rerun_gives_byte_identical_documents(tmp_path):
    source = write_pairs(tmp_path / "a.csv", 500, 3)
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        assert main(["prepare", "--input", str(source), "--output", str(out), "--shard-rows", "100"]) == 0
    names = sorted(p.relative_to(outs[0]) for p in (outs[0] / "documents").iterdir())
    assert len(names) > 1
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    for name in (outs[0] / "docarray").iterdir():
        assert name.read_bytes() == (outs[1] / "docarray" / name.name).read_bytes()


@pytest.mark.parametrize("content", ["notes.txt"])
def test_output_holding_other_files_is_refused(tmp_path, content, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / content).write_text("mine")
    assert main(["prepare", "--input", str(write_pairs(tmp_path / "a.csv", 5, 1)), "--output", str(out)]) == 2
    assert "not part of a finetune-etl dataset" in capsys.readouterr().err
    assert (out / content).read_text() == "mine"
