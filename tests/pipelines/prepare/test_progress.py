"""pipelines.prepare.progress: the progress line sums the markers the read stage drops into staging."""
import json
import threading

import pytest

from pipelines.prepare.progress import PROGRESS_FOLDER, ProgressLine
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
    assert line.startswith("finetune-etl: 2 ranges, 1,234 rows, 1 of 2 MB read (50%), ") and line.endswith(" rows/s")
    assert capsys.readouterr().err.endswith(CLEAR), "the line is not cleared at the end"


def test_markers_dropped_while_it_runs_are_counted(tmp_path, capsys):
    staging = f"memory://progress-{tmp_path.name}/.staging"
    drop_marker(staging, "a", 5, 10)
    with ProgressLine(staging, 100, interval=0.01):
        wait_for_line(capsys, "1 ranges, 5 rows")
        drop_marker(staging, "b", 5, 40)
        assert "2 ranges, 10 rows, 0 of 0 MB read (50%)" in wait_for_line(capsys, "2 ranges")


def test_no_markers_yet_and_no_size(tmp_path, capsys):
    """Before the first range is parsed (no progress folder) and for empty inputs, it shows zeros."""
    with ProgressLine(str(tmp_path / "staging"), 0, interval=0.01):
        assert wait_for_line(capsys, "ranges").startswith("finetune-etl: 0 ranges, 0 rows, 0 of 0 MB read (0%), ")


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
        assert "2 ranges, 4 rows, 0 of 0 MB read (100%)" in wait_for_line(capsys, "2 ranges")
