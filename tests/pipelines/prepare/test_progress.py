"""pipelines.prepare.progress: the progress line sums the markers the stages drop into staging, and names
every stage that has started."""
import json
import subprocess
import sys
import threading

import apache_beam as beam
import pytest

from conftest import ROOT, write_csv
from pipelines.prepare.progress import COMMIT_MARKER, PROGRESS_FOLDER, MarkProgress, ProgressLine, describe
from transforms.storage import join_url, write_bytes

CLEAR = "\r\033[K"


def drop_marker(staging: str, name: str, rows: int, nbytes: int) -> None:
    """A marker as transforms/read/read_csv.py writes one per parsed byte range."""
    write_bytes(json.dumps({"rows": rows, "bytes": nbytes}).encode(), join_url(staging, PROGRESS_FOLDER, name + ".json"))


def wait_for_line(capsys, wanted: str) -> str:
    """Inside a running ProgressLine: read stderr until its latest line contains `wanted` (at most 30 s);
    returns that line."""
    seen, pause = "", threading.Event()
    for _ in range(3000):
        seen += capsys.readouterr().err
        latest = seen.rsplit(CLEAR, 1)[-1]
        if wanted in latest:
            return latest
        pause.wait(0.01)
    raise AssertionError(f"no line with {wanted!r}; stderr was {seen[-300:]!r}")


def test_the_line_sums_ranges_rows_and_bytes(tmp_path, capsys):
    staging = str(tmp_path / ".out.staging-r")
    drop_marker(staging, "a", 1000, 600_000)
    drop_marker(staging, "b", 234, 400_000)
    with ProgressLine(staging, 2_000_000, interval=0.01):
        line = wait_for_line(capsys, "2 ranges")
    assert line.startswith("finetune-etl: read 1,234 rows (50% of 2.0 MB, 2 ranges) · ") and " rows/s · 0:0" in line
    assert capsys.readouterr().err.endswith(CLEAR), "the line is not cleared at the end"


def test_markers_dropped_while_it_runs_are_counted(tmp_path, capsys):
    staging = f"memory://progress-{tmp_path.name}/.staging"
    drop_marker(staging, "a", 5, 10)
    with ProgressLine(staging, 100, interval=0.01):
        wait_for_line(capsys, "read 5 rows (10% of 100 bytes, 1 range)")
        drop_marker(staging, "b", 5, 40)
        assert "read 10 rows (50% of 100 bytes, 2 ranges)" in wait_for_line(capsys, "2 ranges")


def test_no_markers_yet_and_no_size(tmp_path, capsys):
    """Before the first range is parsed (no progress folder) and for empty inputs, it shows zeros."""
    with ProgressLine(str(tmp_path / "staging"), 0, interval=0.01):
        assert wait_for_line(capsys, "ranges").startswith("finetune-etl: read 0 rows (0% of 1 bytes, 0 ranges) · ")


def test_it_writes_only_the_clear_when_stopped_before_a_tick(tmp_path, capsys):
    with ProgressLine(str(tmp_path), 10, interval=3600):
        pass
    assert capsys.readouterr().err == CLEAR


@pytest.mark.parametrize("torn", [b"{not json", b""])
def test_a_half_written_marker_does_not_stop_the_line(tmp_path, capsys, torn):
    staging = str(tmp_path / "staging")
    drop_marker(staging, "whole", 1, 5)
    write_bytes(torn, join_url(staging, PROGRESS_FOLDER, "torn.json"))
    with ProgressLine(staging, 10, interval=0.01):
        threading.Event().wait(0.05)  # a few ticks meet the torn marker
        drop_marker(staging, "torn", 3, 5)
        assert "read 4 rows (100% of 10 bytes, 2 ranges)" in wait_for_line(capsys, "2 ranges")


def test_every_started_stage_is_named_with_its_totals():
    markers = [{"rows": 10, "bytes": 500},
               {"counts": {"rows_read": 10, "media_files": 7, "documents_rejected": 1, "dead_letters": 1}},
               {"counts": {"documents_written": 6, "media_files": 2}}, {"commit": True}]
    line = describe(markers, 1000, 125.0)
    assert line == ("finetune-etl: read 10 rows (50% of 1.0 KB, 1 range) · media 9 files loaded · "
                    "wrote 6 documents · 1 dead letter · committing · 0 rows/s · 2:05")
    assert describe(markers[:1], 1000, 1.0) == "finetune-etl: read 10 rows (50% of 1.0 KB, 1 range) · 10 rows/s · 0:01"


def test_a_commit_marker_shows_committing(tmp_path, capsys):
    staging = str(tmp_path / "staging")
    write_bytes(b"{}", join_url(staging, PROGRESS_FOLDER, COMMIT_MARKER))
    with ProgressLine(staging, 10, interval=0.01):
        wait_for_line(capsys, "committing")


def test_mark_progress_keeps_each_instances_running_totals(tmp_path):
    folder = str(tmp_path / "progress")
    with beam.Pipeline() as p:
        _ = (p | beam.Create([{"rows_read": 3}, {"rows_read": 4, "dead_letters": 1}, {"documents_written": 2}])
             | beam.ParDo(MarkProgress(folder, every=3600)))
    totals = {}
    for marker in (tmp_path / "progress").glob("counts-*.json"):
        for key, value in json.loads(marker.read_text())["counts"].items():
            totals[key] = totals.get(key, 0) + value
    assert totals == {"rows_read": 7, "dead_letters": 1, "documents_written": 2}


def test_a_run_logged_to_a_file_prints_progress_lines_naming_each_stage(tmp_path):
    """Not a terminal (a scheduler's log): plain lines at --progress-every, reaching the write stage."""
    data = write_csv(tmp_path, "".join(f"question {i} about a thing,label {i % 7}\n" for i in range(200_000)))
    result = subprocess.run([sys.executable, "-m", "pipelines.prepare", "--input", str(data), "--is-labeled",
                             "--output", str(tmp_path / "out"), "--progress-every", "0.05", "--range-bytes", "1M"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("finetune-etl: read ")]
    assert len(lines) >= 2 and "\r" not in result.stderr, result.stderr
    assert any("200,000 rows (100% of" in line for line in lines), lines
    assert any("wrote " in line for line in lines), lines
    assert not list(tmp_path.glob(".out.staging-*")), "progress markers outlived the run"
