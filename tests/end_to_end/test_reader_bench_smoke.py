"""Smoke test of bench/reader_bench.py: it prepares a tiny dataset, reads it with every variant and appends its
section to a results file of its own. No timing is asserted."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reader_bench_reports_every_reader_against_iter_batches(tmp_path):
    results = tmp_path / "RESULTS.md"
    run = subprocess.run([sys.executable, "-m", "bench.reader_bench", "--rows", "3000", "--runs", "1",
                          "--batch-size", "256", "--shuffle-buffer", "500", "--workdir", str(tmp_path / "work"),
                          "--results", str(results)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = results.read_text()
    assert "- Training readers, 3,000 rows" in report
    assert "Command: `python -m bench.reader_bench --rows 3000 --runs 1" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "3,000 |" in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| pyarrow iter_batches", "| stream()", "| stream(shuffle_seed=0, shuffle_buffer=500)"]
    assert "target 0.8x" in report
