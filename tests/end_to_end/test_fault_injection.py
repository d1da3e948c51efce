"""Fault injection: a media job under planned HTTP faults finishes with every row accounted for, and a job
whose worker process is killed (DirectRunner multi-processing, Dask) recovers or fails cleanly, never leaving
a committed partial dataset.

The jobs run as `finetune-etl prepare` subprocesses with a time limit (a hang fails the test) against
tests/faulty_server.py on the loopback interface.
"""
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support.cluster import DaskCluster
from conftest import ROOT, assert_reconciled, dead_letters
from support.faulty_server import PERMANENT_KINDS, TRANSIENT_KINDS, FaultyMediaServer, tiny_png

import pipelines

# 2,000 URLs: 63 batches of 32 over 2 worker processes, and every planned fault several times over (with
# seed 7: 84 transient -- each of 500, 503, 429 and reset at least 15 times --, 18 permanent, 6 slow; see
# test_the_plan_holds_every_fault). No timing is asserted, so more URLs only repeat the same cases.
LOAD_URLS = 2_000
LOAD_PLAN = dict(transient=0.05, permanent=0.01, slow=0.003, seed=7)  # the load run's faults (faulty_server.py)
MEDIA_ARGS = ("--is-labeled", "--modalities", "image", "--allow-private-network", "--fetch-timeout", "5",
              "--fetch-retries", "3", "--format", "parquet")
JOB_TIME_LIMIT = 240  # seconds; a job still running then is a hang
LOAD_RUNNER = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


def write_media_csv(path: Path, server: FaultyMediaServer, numbers, route: str = "media", query: str = "") -> Path:
    """A labeled CSV with one image URL of the server per number n: `<url of n>,label <n % 10>`."""
    path.write_text("".join(f"{server.url(f'{route}/{n:05d}.png{query}')},label {n % 10}\n" for n in numbers))
    return path


def job_command(csv_path: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from pipelines.cli import main; sys.exit(main())",
            "prepare", "--input", str(csv_path), "--output", str(out), *MEDIA_ARGS, *args]


def start_job(csv_path: Path, out: Path, log: Path, *args: str) -> subprocess.Popen:
    """The job as a subprocess in a session of its own (so a stuck one can be killed with its workers)."""
    handle = open(log, "wb")  # noqa: SIM115 - the child holds it; closed by the OS when both are done
    return subprocess.Popen(job_command(csv_path, out, *args), stdout=handle, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)


def finish(job: subprocess.Popen, log: Path, limit: float = JOB_TIME_LIMIT) -> int:
    """The job's exit code; kills its whole session and fails the test when it runs past `limit` seconds."""
    try:
        rc = job.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
        pytest.fail(f"the job hung: still running after {limit}s; last output:\n{log_tail(log)}")
    assert_no_processes_left(job)
    return rc


def assert_no_processes_left(job: subprocess.Popen, limit: float = 20) -> None:
    """No process of the job's session (SDK workers, helpers) outlives the job by more than `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        left = [p for p in psutil.process_iter(["pid", "status"]) if _in_session(p, job.pid)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for process in left:
        process.kill()
    assert not left, f"processes left running after the job ended: {left}"


def _in_session(process: psutil.Process, session: int) -> bool:
    try:
        return os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE
    except (OSError, psutil.Error):
        return False


def log_tail(log: Path, lines: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_for_hits(server: FaultyMediaServer, count: int, job: subprocess.Popen, limit: float = 120) -> None:
    """Block until the server has answered `count` requests (the job is fetching)."""
    deadline = time.monotonic() + limit
    while sum(server.hits.values()) < count:
        assert job.poll() is None, "the job ended before it fetched anything"
        assert time.monotonic() < deadline, f"the job made fewer than {count} requests in {limit}s"
        time.sleep(0.1)


def assert_no_partial_output(out: Path) -> None:
    """Nothing committed at --output: no _SUCCESS, and the dataset cannot be loaded."""
    assert not (out / "_SUCCESS").exists()
    with pytest.raises(FileNotFoundError):
        pipelines.load_manifest(str(out))


def assert_complete(out: Path, rows: int, permanent: int = 0) -> dict:
    """A committed dataset in which every one of `rows` rows is a document or a dead letter."""
    c = assert_reconciled(out)
    assert c["rows_read"] == rows
    assert c.get("documents_written", 0) == rows - permanent
    assert c.get("dead_letters", 0) == permanent
    return c


@pytest.fixture(scope="module")
def load_run(tmp_path_factory):
    """A job over LOAD_URLS image URLs of a faulty server: (server, output, seconds, exit code, log)."""
    where = tmp_path_factory.mktemp("load")
    with FaultyMediaServer(**LOAD_PLAN) as server:
        csv_path = write_media_csv(where / "urls.csv", server, range(LOAD_URLS))
        started = time.monotonic()
        job = start_job(csv_path, where / "out", where / "job.log", *LOAD_RUNNER)
        rc = finish(job, where / "job.log")
        yield server, where / "out", time.monotonic() - started, rc, where / "job.log"


def test_the_plan_holds_every_fault():
    """The load run's URLs include each kind of fault several times: every transient failure (500, 503, 429,
    connection reset), both permanent ones (404, 403) and latency spikes."""
    with FaultyMediaServer(**LOAD_PLAN) as server:
        fates = [server.fate(n) for n in range(LOAD_URLS)]
    planned = collections.Counter(kind if kind == "slow" else (kind, detail) for kind, detail in fates)
    for kind in [*(("transient", k) for k in TRANSIENT_KINDS), *(("permanent", k) for k in PERMANENT_KINDS), "slow"]:
        assert planned[kind] >= 5, (kind, planned)


def test_load_run_finishes_and_reconciles(load_run):
    """Every row read is a document or a dead letter; only the permanently failing URLs are dead letters."""
    server, out, seconds, rc, log = load_run
    assert rc == 0, log_tail(log)
    fates = collections.Counter(server.fate(n)[0] for n in range(LOAD_URLS))
    c = assert_complete(out, LOAD_URLS, permanent=fates["permanent"])
    print(f"\nload run: {LOAD_URLS} URLs in {seconds:.1f}s; planned {dict(fates)}; counts {c}")


def test_transient_failures_are_retried_to_success(load_run):
    """Each URL planned to fail once was asked twice and is a document holding the served image; every
    other URL was asked exactly once (a permanent 404/403 is not retried)."""
    server, out, _, rc, log = load_run
    assert rc == 0, log_tail(log)
    expected_hits = {n: 2 if server.fate(n)[0] == "transient" else 1 for n in range(LOAD_URLS)}
    assert dict(server.hits) == expected_hits
    table = pipelines.load_table(str(out), columns=["uri", "blob", "mime_type", "width"]).to_pydict()
    blobs = {int(uri.rsplit("/", 1)[1].split(".")[0]): blob for uri, blob in zip(table["uri"], table["blob"])}
    transient = [n for n in range(LOAD_URLS) if server.fate(n)[0] == "transient"]
    assert transient and all(blobs[n] == tiny_png(n) for n in transient)
    assert set(table["mime_type"]) == {"image/png"} and set(table["width"]) == {32}


def test_permanent_failures_are_dead_letters_with_their_reason(load_run):
    """Each URL answered 404 or 403 is one dead letter of the media stage naming the status."""
    server, out, _, rc, log = load_run
    assert rc == 0, log_tail(log)
    expected = {n: f"http_{server.fate(n)[1]}" for n in range(LOAD_URLS) if server.fate(n)[0] == "permanent"}
    got = {}
    for letter in dead_letters(out):
        n = int(letter["raw"].rsplit("/", 1)[1].split(".")[0])
        assert letter["stage"] == "media" and letter["source_row"] == n + 1, letter
        assert f"HTTP {server.fate(n)[1]}" in letter["reason"], letter
        got[n] = letter["reason_class"]
    assert got == expected


def fetching_process(candidates, server: FaultyMediaServer, job: subprocess.Popen, limit: float = 60) -> psutil.Process:
    """The first of `candidates()` (a function giving processes) seen with a TCP connection to the server:
    a worker busy fetching, so killing it interrupts work in progress."""
    port = server.server_address[1]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert job.poll() is None, "the job ended before a worker was seen fetching"
        for process in candidates():
            try:
                if any(c.raddr and c.raddr.port == port for c in process.net_connections(kind="tcp")):
                    return process
            except psutil.Error:
                continue
        time.sleep(0.05)
    pytest.fail(f"no worker process was seen fetching from the server in {limit}s")


def sdk_workers(launcher: int) -> list[psutil.Process]:
    """The Beam SDK worker processes the DirectRunner started below the launcher process."""
    try:
        children = psutil.Process(launcher).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if _is_sdk_worker(p)]


def _is_sdk_worker(process: psutil.Process) -> bool:
    try:  # the runner starts each as `sh -c "python -m ...sdk_worker_main"`: the python process is the worker
        return process.name().startswith("python") and "sdk_worker_main" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def kill_outcome(out: Path, rows: int, rc: int, log: Path) -> str:
    """After a kill: 'recovered' (a complete, reconciled dataset) or 'failed cleanly' (non-zero exit, a
    message, nothing committed); anything else fails the test."""
    if rc == 0:
        assert_complete(out, rows)
        return "recovered"
    last_line = log_tail(log).strip().splitlines()[-1]
    assert last_line.startswith("finetune-etl: error: the run failed"), last_line
    assert_no_partial_output(out)
    assert not [p.name for p in out.parent.iterdir() if ".staging-" in p.name], "the failed run left its staging folder"
    return "failed cleanly"


def report(what: str, outcome: str, rc: int, killed_at: float, hits_before: int, server, log: Path) -> None:
    """Print what happened after a kill (pytest -s shows it): outcome, timing, refetched URLs, log lines."""
    refetched = sum(1 for hits in server.hits.values() if hits > 1)
    staging = sorted(p.name for p in log.parent.iterdir() if "staging" in p.name)
    lines = [line for line in log.read_text(errors="replace").splitlines()
             if any(word in line for word in ("Error", "error", "retry", "Retry", "killed", "died", "lost"))]
    print(f"\n{what} killed after {hits_before} requests: {outcome}, exit code {rc}, "
          f"{time.monotonic() - killed_at:.1f}s after the kill; {sum(server.hits.values())} requests in all, "
          f"{refetched} URLs fetched more than once; staging folders left: {staging or 'none'}; "
          "log lines about it:\n" + "\n".join(lines[:12]))


def kill_and_judge(what: str, candidates, server, job: subprocess.Popen, out: Path, rows: int, log: Path) -> None:
    """SIGKILL the first of `candidates()` seen fetching, let the job end, and check it recovered or failed cleanly."""
    victim = fetching_process(candidates, server, job)
    hits_before = sum(server.hits.values())
    victim.kill()
    killed_at = time.monotonic()
    rc = finish(job, log)
    outcome = kill_outcome(out, rows, rc, log)
    report(what, outcome, rc, killed_at, hits_before, server, log)


def test_killed_direct_runner_worker_recovers_or_fails_cleanly(tmp_path):
    """SIGKILL to one of two DirectRunner SDK worker processes while they fetch slow URLs."""
    rows = 160
    with FaultyMediaServer(transient=0, permanent=0, slow=0) as server:
        csv_path = write_media_csv(tmp_path / "slow.csv", server, range(rows), route="slow", query="?seconds=0.3")
        log = tmp_path / "job.log"
        job = start_job(csv_path, tmp_path / "out", log, "--fetch-concurrency", "4",
                        "--direct_running_mode=multi_processing", "--direct_num_workers=2")
        wait_for_hits(server, 20, job)
        assert len(sdk_workers(job.pid)) == 2, f"expected 2 SDK worker processes:\n{log_tail(log)}"
        kill_and_judge("DirectRunner SDK worker", lambda: sdk_workers(job.pid), server, job, tmp_path / "out", rows, log)


def test_killed_dask_worker_recovers_or_fails_cleanly(tmp_path):
    """SIGKILL to one of two Dask worker processes (its nanny restarts it) while the job fetches slow URLs."""
    rows = 100
    with FaultyMediaServer(transient=0, permanent=0, slow=0) as server:
        csv_path = write_media_csv(tmp_path / "slow.csv", server, range(rows), route="slow", query="?seconds=0.3")
        cluster = DaskCluster(tmp_path, workers=2)
        try:
            log = tmp_path / "job.log"
            job = start_job(csv_path, tmp_path / "out", log, "--fetch-concurrency", "4",
                            "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
                            f"--dask_client_address={cluster.client_address}")
            wait_for_hits(server, 20, job)
            pids = cluster.run_on_workers(os.getpid).values()
            kill_and_judge("Dask worker", lambda: [psutil.Process(pid) for pid in pids], server, job,
                           tmp_path / "out", rows, log)
        finally:
            cluster.stop()
