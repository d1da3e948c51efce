"""Publishing on an object store, against the GCS emulator: a reader polling the output during re-runs
always finds one complete dataset, a run killed before or during its commit leaves a complete dataset and
the next run clears what it left, --keep-versions keeps the right versions, and the commit copies nothing.

Layout and rules: transforms/commit.py. The emulator ignores generation preconditions (ifGenerationMatch),
so the race of two runs on one new output is only checked for what holds without them."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import pipelines
from conftest import ROOT
from pipelines.cli import main
from transforms.output_folder import foreign_entries

BIG_ROWS = 12_000  # with --shard-rows 100: ~290 objects to upload, seconds of writing before the commit


def pairs(rows: int, seed: int) -> bytes:
    """A query,document CSV; queries repeat every 7 rows."""
    return "".join(f'query {seed}-{i // 7},"document {seed}-{i}, with a comma"\n' for i in range(rows)).encode()


def upload(gcs, name: str, data: bytes) -> str:
    gcs.fs.pipe(f"{gcs.bucket}/{name}", data)
    return gcs.url(name)


def prepare(source: str, out: str, *args: str) -> int:
    return main(["prepare", "--input", source, "--output", out, *args])


def ids(out: str) -> frozenset:
    return frozenset(pipelines.load_table(out, columns=["id"]).column("id").to_pylist())


def tree(gcs, out: str) -> list[str]:
    """Every object under the output, relative to it (a fresh listing)."""
    base = out.removeprefix("gs://").rstrip("/") + "/"
    return sorted(p[len(base):] for p in gcs.fs.find(base))


def versions(gcs, out: str) -> set[str]:
    """The run ids that have files under versions/."""
    return {p.split("/")[1] for p in tree(gcs, out) if p.startswith("versions/")}


def assert_only_the_dataset(gcs, out: str) -> dict:
    """No staging, no foreign file and no version the manifest does not name is left; returns the manifest."""
    manifest = pipelines.load_manifest(out)
    named = {manifest["version"], *manifest["previous_versions"]}
    assert {f"versions/{v}" for v in versions(gcs, out)} == named
    assert not [p for p in tree(gcs, out) if p.startswith("_staging-")]
    assert foreign_entries(out) == []
    return manifest


@pytest.mark.parametrize("keep", ["0", "1"])
def test_a_reader_polling_during_reruns_always_finds_one_complete_dataset(gcs, keep):
    """--keep-versions 0 removes the previous version right after the switch, under readers still reading it:
    they start over on the new manifest."""
    out = gcs.url("out")
    inputs = [upload(gcs, f"in/{n}.csv", pairs(400, n)) for n in range(2)]
    assert prepare(inputs[0], out, "--shard-rows", "50") == 0
    expected = {ids(out)}
    reads, errors, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                reads.append(ids(out))
            except Exception as error:  # noqa: BLE001 -- any failure to read is what this test looks for
                errors.append(repr(error))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in (1, 0, 1):
            assert prepare(inputs[n], out, "--shard-rows", "50", "--overwrite", "--keep-versions", keep) == 0
            expected.add(ids(out))
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(expected) == 2 and reads
    assert all(r in expected for r in reads)
    assert len(assert_only_the_dataset(gcs, out)["previous_versions"]) == int(keep)


def in_a_new_version(gcs, out: str, old: str, marker: str) -> bool:
    """Whether a version other than run `old`'s holds an entry ending in `marker` ("documents" or
    "manifest.json"), listing only the versions' own folders: a listing of the whole output (hundreds of
    shards) can take longer than a run takes from its version's manifest to its exit, too late to kill it."""
    base = out.removeprefix("gs://").rstrip("/") + "/versions/"
    gcs.fs.invalidate_cache()
    folders = [f for f in gcs.fs.ls(base, detail=False) if f.rstrip("/").rsplit("/", 1)[-1] != old]
    return any(entry.rstrip("/").endswith("/" + marker) for folder in folders
               for entry in gcs.fs.ls(folder, detail=False))


def wait_for(condition, job: subprocess.Popen, seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert job.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.02)


@pytest.mark.parametrize("moment", ["writing", "committing"])
def test_a_killed_run_leaves_a_complete_dataset_and_the_next_run_clears_what_it_left(gcs, moment):
    """Killed (SIGKILL) once its first shard is in its version (writing), or once its version's manifest is
    (the commit's first write: the kill lands before or after the publish)."""
    out = gcs.url("out")
    small, big = upload(gcs, "in/small.csv", pairs(30, 1)), upload(gcs, "in/big.csv", pairs(BIG_ROWS, 2))
    assert prepare(small, out) == 0
    before = pipelines.load_manifest(out)
    job = subprocess.Popen([sys.executable, "-m", "pipelines.prepare", "--input", big, "--output", out, "--overwrite",
                            "--shard-rows", "100"],
                           cwd=ROOT, env=gcs.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    marker = {"writing": "documents", "committing": "manifest.json"}[moment]
    try:
        wait_for(lambda: in_a_new_version(gcs, out, before["run_id"], marker), job)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    (killed,) = versions(gcs, out) - {before["run_id"]}

    found = pipelines.load_manifest(out)
    if moment == "writing":
        assert found["run_id"] == before["run_id"]
    assert found["run_id"] in (before["run_id"], killed)
    assert pipelines.load_table(out).num_rows == found["counts"]["documents_written"]
    assert foreign_entries(out) == []

    assert prepare(big, out, "--overwrite") == 0
    after = assert_only_the_dataset(gcs, out)
    assert after["previous_versions"] == [found["version"]]
    assert (killed in versions(gcs, out)) == (found["run_id"] == killed)  # kept as the previous version if published
    assert pipelines.load_table(out).num_rows == after["counts"]["documents_written"] > 0


def test_keep_versions_keeps_that_many_versions_before_the_current_one(gcs):
    out = gcs.url("out")
    runs = []  # (run id, ids) of each run, oldest first
    for n, keep in enumerate(["1", "2", "2", "1"]):
        assert prepare(upload(gcs, f"in/{n}.csv", pairs(20, n)), out, "--overwrite", "--keep-versions", keep) == 0
        runs.append((pipelines.load_manifest(out)["run_id"], ids(out)))
        assert versions(gcs, out) == {run for run, _ in runs[-1 - int(keep):]}
        assert_only_the_dataset(gcs, out)

    # A kept version is complete: its own manifest, put back in place, rolls the dataset back.
    kept, kept_ids = runs[-2]
    gcs.fs.pipe(f"{gcs.bucket}/out/manifest.json", gcs.fs.cat(f"{gcs.bucket}/out/versions/{kept}/manifest.json"))
    assert ids(out) == kept_ids

    assert prepare(upload(gcs, "in/last.csv", pairs(20, 9)), out, "--overwrite", "--keep-versions", "0") == 0
    assert versions(gcs, out) == {pipelines.load_manifest(out)["run_id"]}
    assert_only_the_dataset(gcs, out)


def test_the_commit_copies_no_object(gcs):
    """The emulator logs every request: a re-run makes no copy, rewrite, compose or move request, and the
    shards the manifest lists are the objects the write stage wrote, in the run's version."""
    out = gcs.url("out")
    source = upload(gcs, "in/a.csv", pairs(300, 1))
    assert prepare(source, out, "--shard-rows", "40") == 0
    log_start = gcs.log_path.stat().st_size
    assert prepare(source, out, "--shard-rows", "40", "--overwrite") == 0
    with open(gcs.log_path, "rb") as log:
        log.seek(log_start)
        requests = log.read().decode(errors="replace").splitlines()
    assert any("/upload/" in r for r in requests), "the emulator's request log is not where this test looks"
    assert [r for r in requests if any(w in r for w in ("copyTo", "rewriteTo", "compose", "moveTo"))] == []
    manifest = pipelines.load_manifest(out)
    listed = [s["path"] for kind in manifest["shards"].values() for s in kind]
    assert len(listed) > 2 and all(p.startswith(f"versions/{manifest['run_id']}/") for p in listed)


def test_a_dataset_published_before_versions_is_replaced_and_its_shards_removed(gcs, tmp_path):
    """Shards at OUTPUT/documents/... and a manifest without `version` (the layout before versions)."""
    source = upload(gcs, "in/a.csv", pairs(50, 1))
    local = tmp_path / "old"
    assert prepare(source, str(local), "--shard-rows", "20") == 0
    gcs.fs.put(f"{local}/", f"{gcs.bucket}/out/", recursive=True)
    out = gcs.url("out")
    assert "documents/part-00000-of-00003.parquet" in tree(gcs, out) and foreign_entries(out) == []
    assert prepare(upload(gcs, "in/b.csv", pairs(10, 2)), out, "--overwrite") == 0
    manifest = assert_only_the_dataset(gcs, out)
    assert manifest["previous_versions"] == []
    assert sorted(tree(gcs, out)) == sorted(
        [s["path"] for kind in manifest["shards"].values() for s in kind]
        + ["README.md", "_SUCCESS", "manifest.json", f"{manifest['version']}/manifest.json",
           f"{manifest['version']}/README.md"])


def test_foreign_files_in_a_gcs_output_are_still_refused(gcs, capsys):
    out = gcs.url("out")
    source = upload(gcs, "in/a.csv", pairs(10, 1))
    assert prepare(source, out) == 0
    version = pipelines.load_manifest(out)["version"]
    gcs.fs.pipe(f"{gcs.bucket}/out/{version}/notes.txt", b"mine")
    capsys.readouterr()
    assert prepare(source, out, "--overwrite") == 2
    assert f"{version}/notes.txt" in capsys.readouterr().err
    assert gcs.fs.cat(f"{gcs.bucket}/out/{version}/notes.txt") == b"mine"


def test_two_runs_on_one_new_output_leave_one_complete_dataset(gcs):
    """On GCS the later of two runs racing to a new output is refused by a generation precondition on the
    manifest; the emulator ignores it, so here either run may also win by writing last. What holds either
    way: each run publishes or says it was refused, one complete dataset remains, nothing else does."""
    out = gcs.url("out")
    source = upload(gcs, "in/a.csv", pairs(2000, 1))
    command = [sys.executable, "-m", "pipelines.prepare", "--input", source, "--output", out]
    runs = [subprocess.Popen(command, cwd=ROOT, env=gcs.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert 0 in [code for code, _ in results], results
    for code, stderr in results:
        assert code in (0, 2), stderr
        if code == 2:
            assert stderr.strip().splitlines()[-1].startswith("finetune-etl: error:") and "Traceback" not in stderr
    manifest = assert_only_the_dataset(gcs, out)
    assert manifest["counts"]["rows_read"] == 2000
    assert pipelines.load_table(out).num_rows == manifest["counts"]["documents_written"]
