"""Publishing a dataset: atomic replacement, snapshot reads, killed runs, dated outputs; on object stores,
versions published by one manifest write and pruned (the GCS emulator: tests/hostile/test_object_store_publish.py)."""
import datetime
import json
import os
import posixpath
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

import pipelines
from pipelines.cli import main
from schemas.documents import DOCUMENT_SCHEMA
from transforms.commit import _CommitFn, prune_versions, publish, unpublished_reason
from transforms.staging import claim, shards_url, staging_url
from transforms.storage import filesystem, join_url, write_bytes
from transforms.write.parquet import ParquetShards
from transforms.write.shard_writer import FileRecord, write_shard

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
    listed = sorted(s["path"] for kind in ("documents", "dead_letters", "duplicates") for s in second["shards"][kind])
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


# Object stores: publish and prune on fsspec's in-memory filesystem (no folder rename, like gs:// and s3://).

def memory_output() -> str:
    return f"memory://commit-test-{uuid.uuid4().hex}/out"


def stage_version(output: str, run_id: str, buckets: dict[int, list[str]]) -> list[FileRecord]:
    """What the write stage leaves for a run on an object store: its staging claimed and one Parquet shard
    per (bucket, part) in its version, with one document per id -> the FileRecords."""
    claim(staging_url(output, run_id))
    files = []
    for bucket, parts in buckets.items():
        for part, doc_id in enumerate(parts):
            table = pa.Table.from_pylist([{"id": doc_id, "modality": "text", "text": doc_id}], DOCUMENT_SCHEMA)
            url = join_url(shards_url(output, run_id), "documents", f"b{bucket:05d}-{part:04d}.parquet")
            files.append(write_shard(ParquetShards, table, url, bucket, part))
    return files


def publish_run(output: str, run_id: str, buckets: dict[int, list[str]], keep_versions: int = 1) -> dict:
    options = {"output": {"format": "parquet", "overwrite": True, "keep_versions": keep_versions}}
    files = stage_version(output, run_id, buckets)
    return publish(output, staging_url(output, run_id), files, {}, {"run_id": run_id, "options": options})


def objects(output: str) -> list[str]:
    fs, path = filesystem(output)
    return sorted(posixpath.relpath(p, path) for p in fs.find(path))


def test_object_store_publish_lists_the_written_files_in_place_and_keeps_the_previous_version():
    out = memory_output()
    publish_run(out, "R1", {0: ["a"]})
    manifest = publish_run(out, "R2", {1: ["c"], 0: ["b", "d"]})
    assert manifest["version"] == "versions/R2" and manifest["previous_versions"] == ["versions/R1"]
    assert [s["path"] for s in manifest["shards"]["documents"]] == [
        "versions/R2/documents/b00000-0000.parquet", "versions/R2/documents/b00000-0001.parquet",
        "versions/R2/documents/b00001-0000.parquet"]
    assert [s["path"] for s in manifest["shards"]["dead_letters"]] == ["versions/R2/dead_letters/empty.parquet"]
    assert sorted(pipelines.load_table(out).column("id").to_pylist()) == ["b", "c", "d"]
    assert objects(out) == ["README.md", "_SUCCESS", "manifest.json",
                            "versions/R1/README.md",
                            "versions/R1/dead_letters/empty.parquet", "versions/R1/documents/b00000-0000.parquet",
                            "versions/R1/duplicates/empty.parquet", "versions/R1/manifest.json",
                            "versions/R2/README.md",
                            "versions/R2/dead_letters/empty.parquet", "versions/R2/documents/b00000-0000.parquet",
                            "versions/R2/documents/b00000-0001.parquet", "versions/R2/documents/b00001-0000.parquet",
                            "versions/R2/duplicates/empty.parquet", "versions/R2/manifest.json"]
    assert json.loads(filesystem(out)[0].cat_file(filesystem(join_url(out, "versions/R2/manifest.json"))[1])) == manifest


@pytest.mark.parametrize("keep, kept", [(0, []), (1, ["R3"]), (2, ["R3", "R2"])])
def test_keep_versions_counts_the_versions_before_the_current_one(keep, kept):
    out = memory_output()
    for run_id in ("R1", "R2", "R3"):
        publish_run(out, run_id, {0: [run_id]}, keep_versions=2)
    manifest = publish_run(out, "R4", {0: ["R4"]}, keep_versions=keep)
    assert manifest["previous_versions"] == [f"versions/{r}" for r in kept]
    assert {p.split("/")[1] for p in objects(out) if p.startswith("versions/")} == {"R4", *kept}


def test_prune_removes_only_versions_no_manifest_keeps_and_no_running_staging_claims():
    out = memory_output()
    publish_run(out, "R1", {0: ["a"]})
    publish_run(out, "R2", {0: ["b"]})
    stage_version(out, "running", {0: ["c"]})  # staged by this (live) process: a run in progress
    stage_version(out, "dead", {0: ["d"]})
    write_bytes(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 4321}).encode(),
                join_url(staging_url(out, "dead"), "owner.json"))
    stage_version(out, "failed", {0: ["e"]})
    fs, _ = filesystem(out)
    fs.rm(filesystem(staging_url(out, "failed"))[1], recursive=True)  # its launcher discarded the staging
    assert prune_versions(out) == ["dead", "failed"]
    assert {p.split("/")[1] for p in objects(out) if p.startswith("versions/")} == {"R1", "R2", "running"}
    assert not fs.exists(filesystem(staging_url(out, "dead"))[1])


def test_a_refused_object_store_commit_removes_its_version():
    out = memory_output()
    publish_run(out, "R1", {0: ["a"]})
    files = stage_version(out, "R2", {0: ["b"]})
    options = {"output": {"format": "parquet", "overwrite": False, "keep_versions": 1}}
    done = list(_CommitFn(out, staging_url(out, "R2"), {"run_id": "R2", "options": options}).process(None, files, {}))
    assert done == []
    assert "already holds a complete dataset" in unpublished_reason(staging_url(out, "R2"))
    assert not [p for p in objects(out) if p.startswith("versions/R2")]
    assert pipelines.load_table(out).column("id").to_pylist() == ["a"]


def test_a_retried_commit_of_a_published_run_leaves_the_dataset_whole():
    """A runner that retries the commit after it published (without --overwrite) is refused by the complete
    dataset there, its own: the version the manifest names is not discarded."""
    out = memory_output()
    options = {"output": {"format": "parquet", "overwrite": False, "keep_versions": 1}}
    files = stage_version(out, "R1", {0: ["a"]})
    commit = _CommitFn(out, staging_url(out, "R1"), {"run_id": "R1", "options": options})
    assert [m["run_id"] for m in commit.process(None, files, {})] == ["R1"]
    assert list(commit.process(None, files, {})) == []
    assert pipelines.load_table(out).column("id").to_pylist() == ["a"]
