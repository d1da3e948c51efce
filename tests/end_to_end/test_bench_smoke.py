"""Smoke tests of the benchmark scripts: each starts, runs its variants on a tiny input and writes its report
(markdown section and PNG charts) to a temporary place. No timing is asserted."""
import subprocess
import sys
from pathlib import Path

import pipelines

ROOT = Path(__file__).resolve().parents[2]


def run_bench(module: str, tmp_path: Path, *args: str) -> str:
    """Run `python -m bench.<module>` with the results and charts in tmp_path; returns the results file's text."""
    results, charts = tmp_path / "RESULTS.md", tmp_path / "charts"
    proc = subprocess.run([sys.executable, "-m", f"bench.{module}", "--workdir", str(tmp_path / "work"),
                           "--results", str(results), "--charts", str(charts), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results.read_text()


def assert_charts(report: str, tmp_path: Path, names: list[str]) -> None:
    for name in names:
        png = tmp_path / "charts" / name
        assert f"]({Path('charts') / name})" in report, f"{name} is not linked from the report"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"


def test_text_bench_reports_every_variant_with_a_chart(tmp_path):
    report = run_bench("text_bench", tmp_path, "--size-mb", "0.05", "--layout", "scores",
                       "--only", "beam,pyarrow,finetuner-loop")
    assert "text, scores" in report and "Machine: nproc=" in report and "load average" in report
    table = [line for line in report.splitlines() if line.startswith("| ")]
    ok_rows = {line.split(" | ")[0][2:]: line for line in table if " | ok | " in line}
    assert set(ok_rows) == {"beam", "pyarrow", "finetuner-loop"}, table
    docs = {name: line.split(" | ")[6] for name, line in ok_rows.items()}
    assert docs["beam"] == docs["pyarrow"] == docs["finetuner-loop"] != "-", docs  # scores: one document per row
    assert_charts(report, tmp_path, ["text-scores-0.05MB.png"])


def test_scaling_bench_reports_sizes_verdict_and_chart(tmp_path):
    report = run_bench("scaling_bench", tmp_path, "--rows", "300,900", "--variants", "beam", "--layout", "labeled")
    assert "| 300 |" in report and "| 900 |" in report and "FAILED" not in report
    assert "Verdict:" in report and "Least-squares line" in report
    assert_charts(report, tmp_path, ["scaling-labeled.png"])


def test_media_bench_fetches_over_loopback_http_and_samples(tmp_path, test_data):
    report = run_bench("media_bench", tmp_path, "--copies", "1", "--only", "http,sampling", "--quick",
                       "--data", str(test_data))
    rows = {line.split(" | ")[0][2:]: line for line in report.splitlines() if line.startswith("| http")}
    assert set(rows) == {"http: pipeline, --convert-to-blob", "http: urllib + Pillow loop"}, rows
    assert not any("FAILED" in line for line in rows.values()), rows
    assert "Limit for http" in report and "sample_point_cloud (ours" in report
    assert_charts(report, tmp_path, ["media-images.png", "media-sampling.png"])
    documents = tmp_path / "work" / "out" / "http"
    table = pipelines.load_table(str(documents), columns=["uri", "blob", "width"])
    assert table.num_rows > 0 and table.column("blob").null_count == 0  # every image really came over HTTP
    assert all(uri.startswith("http://127.0.0.1:") for uri in table.column("uri").to_pylist())
