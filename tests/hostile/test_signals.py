"""A run stopped by SIGTERM (a scheduler) or Ctrl-C ends with one line, exit 130, and leaves no staging;
the staging of a run that died without cleaning up (SIGKILL) is removed by the next run on that output."""
import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, write_csv

ROWS = 3_000_000  # a run of ~15 s here: still going when the signal comes, 2 s in


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    """A labeled CSV large enough that a run is still going a few seconds after it starts."""
    folder = tmp_path_factory.mktemp("signals")
    return write_csv(folder, "".join(f"question number {i} about a thing,label {i % 50}\n" for i in range(ROWS)))


def start(csv_path, out):
    return subprocess.Popen([sys.executable, "-m", "pipelines.prepare", "--input", str(csv_path), "--is-labeled",
                             "--output", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_staging(out, run, seconds=120.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and run.poll() is None:
        if list(out.parent.glob(f".{out.name}.staging-*/owner.json")):
            return
        time.sleep(0.1)
    pytest.fail("the run never staged anything")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_run_says_so_in_one_line_and_leaves_no_staging(big_csv, tmp_path, stop):
    out = tmp_path / "out"
    run = start(big_csv, out)
    wait_for_staging(out, run)
    time.sleep(2)  # well into the pipeline
    run.send_signal(stop)
    code = run.wait(timeout=120)
    stderr = run.stderr.read()
    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("finetune-etl: stopped before the end; nothing was committed")
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "staging or a dataset was left behind"


def test_the_next_run_removes_the_staging_of_a_dead_run(tmp_path):
    data = write_csv(tmp_path, "a,x\nb,y\n")
    out = tmp_path / "out"
    dead = tmp_path / ".out.staging-20260101T000000Z-deadbeef"
    dead.mkdir()
    (dead / "owner.json").write_text(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 12345}))
    (dead / "spill").mkdir()
    alive = tmp_path / ".out.staging-20260101T000000Z-alive000"
    alive.mkdir()
    (alive / "owner.json").write_text(json.dumps({"host": socket.gethostname(), "pid": 1}))  # init: alive
    result = subprocess.run([sys.executable, "-m", "pipelines.prepare", "--input", str(data), "--is-labeled",
                             "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not dead.exists()
    assert alive.exists(), "the staging of a live process was removed"
