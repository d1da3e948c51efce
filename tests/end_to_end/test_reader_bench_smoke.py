"""Smoke tests of bench/reader_bench.py: it prepares a tiny text dataset (or a tiny image dataset), reads it with
every variant and appends its section to a results file of its own. No timing is asserted."""
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


def test_reader_bench_reports_every_image_reader_against_two_processes(tmp_path):
    results = tmp_path / "RESULTS.md"
    run = subprocess.run([sys.executable, "-m", "bench.reader_bench", "--rows", "0", "--images", "40", "--runs", "1",
                          "--workdir", str(tmp_path / "work"), "--results", str(results)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = results.read_text()
    assert "- Training readers, 40 images" in report
    assert report.count("- Training readers") == 1  # --rows 0: no text case
    assert "Command: `python -m bench.reader_bench --rows 0 --images 40 --runs 1" in report
    rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| ") and " | 40 | " in line]
    assert [row[0] for row in rows] == [
        "| iter_batches + Pillow, 1 process", "| iter_batches + Pillow, 2 processes",
        "| DataLoader(TrainingDataset), 2 workers",
        "| DataLoader(TrainingDataset(shuffle_seed=0, shuffle_buffer=10,000)), 2 workers"]
    for row in rows:
        images_per_s, ratio = float(row[2].replace(",", "")), float(row[6].removesuffix("x"))
        assert images_per_s > 0 and ratio > 0
    assert "target 0.8x" in report
