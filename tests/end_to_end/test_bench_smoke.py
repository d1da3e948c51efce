"""Smoke tests of the benchmark scripts: each starts, runs its variants on a tiny input and writes its report
(markdown section and PNG charts) to a temporary place. No timing is asserted.

The scripts are independent (each its own folders, inputs and loopback server) and each runs its variants
one at a time, so the `benches` fixture starts them all at once and each test waits for its own: on two or
more cores the module takes about as long as its slowest script instead of the sum of them."""
import subprocess
import sys
from pathlib import Path

import pytest

import pipelines

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds per script


class Bench:
    """`python -m bench.<module>` started with its results, charts, work folder and output in `folder`."""

    def __init__(self, module: str, folder: Path, *args: str):
        self.folder, self.results, self.log = folder, folder / "RESULTS.md", folder / "bench.log"
        with open(self.log, "wb") as log:  # a file, not a pipe: nothing blocks while no one reads it
            self.proc = subprocess.Popen([sys.executable, "-m", f"bench.{module}", "--workdir", str(folder / "work"),
                                          "--results", str(self.results), "--charts", str(folder / "charts"), *args],
                                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)

    def report(self) -> str:
        """Wait for the script to end; returns the results file's text."""
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the bench ran over {TIMEOUT}s:\n{self.stderr_tail()}")
        assert self.proc.returncode == 0, self.stderr_tail()
        return self.results.read_text()

    def stderr_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# name -> (the test that reads its report, the script and its arguments)
BENCHES = {
    "text": ("test_text_bench_reports_every_variant_with_a_chart",
             "text_bench", "--size-mb", "0.05", "--layout", "scores", "--only", "beam,pyarrow,finetuner-loop"),
    "scaling": ("test_scaling_bench_reports_sizes_verdict_and_chart",
                "scaling_bench", "--rows", "300,900", "--variants", "beam", "--layout", "labeled"),
    "media": ("test_media_bench_fetches_over_loopback_http_and_samples",
              "media_bench", "--copies", "1", "--only", "http,sampling", "--quick", "--data", "{test_data}"),
    "duplicates": ("test_duplicates_bench_runs_plain_and_near_and_finds_the_photo_copies",
                   "duplicates_bench", "--layout", "", "--images", "20"),
    "split": ("test_split_bench_splits_text_and_photos_and_draws_the_ratios",
              "split_bench", "--rows", "300", "--layout", "pairs", "--images", "20"),
    "incremental": ("test_incremental_bench_reuses_the_unchanged_photos",
                    "incremental_bench", "--photos", "20", "--changed", "10"),
    "small runs": ("test_small_runs_bench_times_an_example_against_another_checkout",
                   "small_runs_bench", "--runs", "1", "--cases", "seed pairs", "--before", str(ROOT)),
}


@pytest.fixture(scope="module")
def benches(request, tmp_path_factory, test_data):
    """The bench scripts this session's tests read, started together when the first test asks: {name: Bench},
    each in a temporary folder of its own."""
    selected = {item.name for item in request.session.items if item.path == request.node.path}
    running = {}
    for name, (test, module, *args) in BENCHES.items():
        if test in selected:
            args = [arg.format(test_data=test_data) for arg in args]
            running[name] = Bench(module, tmp_path_factory.mktemp(name), *args)
    yield running
    for bench in running.values():
        bench.stop()


def assert_charts(report: str, tmp_path: Path, names: list[str]) -> None:
    for name in names:
        png = tmp_path / "charts" / name
        assert f"]({Path('charts') / name})" in report, f"{name} is not linked from the report"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"


def case_rows(report: str, case: str) -> dict[str, list[str]]:
    """The cells of a report table's rows whose first cell is `case`, by their second cell (the run)."""
    return {cells[1]: cells for cells in (line.strip("| ").split(" | ") for line in report.splitlines())
            if cells[0] == case}


def test_text_bench_reports_every_variant_with_a_chart(benches):
    bench = benches["text"]
    report, tmp_path = bench.report(), bench.folder
    assert "text, scores" in report and "Machine: nproc=" in report and "load average" in report
    table = [line for line in report.splitlines() if line.startswith("| ")]
    ok_rows = {line.split(" | ")[0][2:]: line for line in table if " | ok | " in line}
    assert set(ok_rows) == {"beam", "pyarrow", "finetuner-loop"}, table
    docs = {name: line.split(" | ")[6] for name, line in ok_rows.items()}
    assert docs["beam"] == docs["pyarrow"] == docs["finetuner-loop"] != "-", docs  # scores: one document per row
    assert_charts(report, tmp_path, ["text-scores-0.05MB.png"])


def test_scaling_bench_reports_sizes_verdict_and_chart(benches):
    bench = benches["scaling"]
    report, tmp_path = bench.report(), bench.folder
    assert "| 300 |" in report and "| 900 |" in report and "FAILED" not in report
    assert "Verdict:" in report and "Least-squares line" in report
    assert_charts(report, tmp_path, ["scaling-labeled.png"])


def test_media_bench_fetches_over_loopback_http_and_samples(benches):
    bench = benches["media"]
    report, tmp_path = bench.report(), bench.folder
    rows = {line.split(" | ")[0][2:]: line for line in report.splitlines() if line.startswith("| http")}
    assert set(rows) == {"http: pipeline, --convert-to-blob", "http: urllib + Pillow loop"}, rows
    assert not any("FAILED" in line for line in rows.values()), rows
    assert "Limit for http" in report and "sample_point_cloud (ours" in report
    assert_charts(report, tmp_path, ["media-images.png", "media-sampling.png"])
    documents = tmp_path / "work" / "out" / "http"
    table = pipelines.load_table(str(documents), columns=["uri", "blob", "width"])
    assert table.num_rows > 0 and table.column("blob").null_count == 0  # every image really came over HTTP
    assert all(uri.startswith("http://127.0.0.1:") for uri in table.column("uri").to_pylist())


def test_duplicates_bench_runs_plain_and_near_and_finds_the_photo_copies(benches):
    """Photos only (two prepare runs): the text cases differ only in the CSV they make."""
    bench = benches["duplicates"]
    report, tmp_path = bench.report(), bench.folder
    assert "## Near duplicates" in report and "`python -m bench.duplicates_bench --workdir" in report
    rows = case_rows(report, "photos, 20 (2 near copies)")
    assert set(rows) == {"plain", "--near-duplicates"}, report
    assert rows["plain"][6] == rows["--near-duplicates"][6] == "20" and rows["plain"][7:9] == ["0", "0"]
    found, clusters = int(rows["--near-duplicates"][7]), int(rows["--near-duplicates"][8])
    assert found >= 4 and clusters >= 2, rows  # each copy with its original
    assert_charts(report, tmp_path, ["near-duplicates.png"])


def test_split_bench_splits_text_and_photos_and_draws_the_ratios(benches):
    bench = benches["split"]
    report, tmp_path = bench.report(), bench.folder
    assert "--split against a plain run, 300 rows, 20 photos" in report and "load average" in report
    split = "--split train=0.8,validation=0.1,test=0.1"
    for case in ("pairs", "photos, 20"):
        rows = case_rows(report, case)
        assert set(rows) == {"plain", split}, report
        assert rows["plain"][5] == rows[split][5] != "0", rows  # the same documents, split or not
        assert rows["plain"][8] == "-" and rows[split][8].startswith("train 0."), rows
    assert_charts(report, tmp_path, ["split.png"])


def test_incremental_bench_reuses_the_unchanged_photos(benches):
    bench = benches["incremental"]
    report, tmp_path = bench.report(), bench.folder
    assert "## Incremental re-runs" in report and "`python -m bench.incremental_bench --workdir" in report
    rows = case_rows(report, "20 photos, 10% changed (2 rows)")
    assert set(rows) == {"scratch", "incremental"}, report
    assert rows["scratch"][6:10] == ["20", "0", "20", "yes"]  # documents, reused, files sent, identical
    assert rows["incremental"][6:10] == ["20", "18", "2", "yes"]
    assert_charts(report, tmp_path, ["incremental.png"])


def test_small_runs_bench_times_an_example_against_another_checkout(benches):
    bench = benches["small runs"]
    report, tmp_path = bench.report(), bench.folder
    assert "- Small runs: the bundled examples, default options" in report
    assert "`python -m bench.small_runs_bench --workdir" in report
    floor, pairs = case_rows(report, "import apache_beam (the floor)"), case_rows(report, "seed pairs")
    assert floor and pairs, report
    cells = next(iter(pairs.values()))
    assert float(cells[1]) > 0 and cells[4] in ("yes", "no") and cells[7].endswith("x"), cells
    assert (tmp_path / "work" / "this" / "seed-pairs" / "_SUCCESS").exists()
    assert (tmp_path / "work" / "before" / "seed-pairs" / "_SUCCESS").exists()
    assert_charts(report, tmp_path, ["small-runs.png"])
