"""The same input through every runner gives identical documents.

DirectRunner (one worker in this process, worker threads, and multi_processing with 2 workers), Beam's
DaskRunner on a real local Dask cluster (scheduler and 2 single-threaded worker processes started fresh for
this module) and the PortableRunner against Beam's local job service (LOOPBACK) must write byte-identical
documents Parquet files, the same dead letters and the same counts.

Inputs and outputs live in a "shared" folder outside /tmp that every process can read. Where the machine
allows it (root + `unshare`), the Dask workers run in a mount namespace of their own with an empty /tmp,
so they cannot see anything the launcher keeps in its temporary folder: nothing may depend on one process.
"""
import contextlib
import collections
import csv
import dataclasses
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from support.cluster import DaskCluster, JobService, can_hide_tmp

import pipelines
from pipelines.cli import main
from pipelines.prepare.command_line import options_from_args, prepare_parser
from pipelines.prepare.job import plan_job
from pipelines.prepare.run import run

ROOT = Path(__file__).resolve().parents[2]
QUORA = ROOT / "examples" / "quora-labeled.csv"  # Finetuner's labeled example

TUNING = ("--range-bytes", "20000", "--batch-rows", "500")
MULTI_PROCESSING = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")
THREADS = ("--direct_running_mode=multi_threading", "--direct_num_workers=2")  # the default for larger inputs
DASK_RUNNER = "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"

# Every dataset folder holds exactly these after a run: no staging, spill or probe files.
DATASET_ENTRIES = ["README.md", "_SUCCESS", "dead_letters", "docarray", "documents", "duplicates", "manifest.json"]

TIMINGS: dict = {}


# ---------------------------------------------------------------------------------------------- inputs

def pair_rows(n: int = 3000, seed: int = 7) -> list[list[str]]:
    """Query-document rows: 180 queries repeated many times (some with a comma inside), documents drawn
    with repeats (so some (query, document) pairs repeat), one document with an embedded newline."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        query = f"query {i % 180}" + (", with a comma" if (i % 180) % 9 == 0 else "")
        document = f"document {rng.randrange(2500)} about topic {i % 37}, padded with a few more words"
        rows.append([query, document])
    rows[1234] = ["query 4, about lines", "first line of a document\nand its second line, after a newline"]
    return rows


# Rows with the wrong number of fields: dead letters, read by every runner too.
BAD_ROWS = {700: ["a row with only one field"], 2100: ["query 1", "a document", "and a third field"]}


def labeled_rows(n: int = 1500, seed: int = 11) -> list[list[str]]:
    """Sentence,label rows with repeated sentences (labeled keeps repeats) and quoted commas."""
    rng = random.Random(seed)
    rows = [[f"sentence {rng.randrange(1200)}, number {i % 13}", f"label {i % 17}"] for i in range(n)]
    rows[321] = ["a sentence\nover two lines", "label 3"]
    return rows


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [r for r in csv.reader(handle) if r]


def _writable_dir_outside_tmp() -> Path | None:
    tmp = Path(tempfile.gettempdir()).resolve()
    for candidate in (Path("/var/tmp"), Path("/dev/shm")):
        resolved = candidate.resolve()
        if resolved.is_dir() and os.access(resolved, os.W_OK) and tmp not in (resolved, *resolved.parents):
            return resolved
    return None


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A folder every process on this machine can read and write, outside the launcher's /tmp when possible."""
    base = _writable_dir_outside_tmp()
    if base is None:
        yield tmp_path_factory.mktemp("runners-shared")
        return
    folder = Path(tempfile.mkdtemp(prefix="finetune-etl-runners-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Dataset:
    """An input CSV, the options it is run with, and what its documents must be.

    bucket_bytes: also lower ReadTuning.bucket_bytes (no command-line option; the job is then planned and
    run exactly as `finetune-etl prepare` does, with that one field changed) so the shuffle has many buckets.
    size: the --size the options hold (the documents are then a sample of the rows)."""

    def __init__(self, name: str, csv_path: Path, options: tuple, layout: str, bucket_bytes: int | None = None,
                 size: int | None = None):
        self.name, self.csv, self.options, self.layout = name, csv_path, options, layout
        self.bucket_bytes, self.size = bucket_bytes, size
        self._runs = 0

    def run(self, where: Path, *beam_args: str, label: str) -> Path:
        """Run `prepare` on this dataset into a new folder under `where`; returns the folder."""
        self._runs += 1
        out = where / f"out-{self.name}-{label}-{self._runs}"
        argv = ["--input", str(self.csv), "--output", str(out), *self.options, *beam_args]
        started = time.monotonic()
        if self.bucket_bytes is None:
            rc = main(["prepare", *argv])
            assert rc == 0, f"prepare returned {rc}"
        else:
            args, rest = prepare_parser().parse_known_args(argv)
            csv_options, output, tuning, media = options_from_args(args)
            tuning = dataclasses.replace(tuning, bucket_bytes=self.bucket_bytes)
            run(plan_job(args.input, csv_options, output, tuning, media=media), rest)
        TIMINGS[f"{self.name}/{label}#{self._runs}"] = round(time.monotonic() - started, 1)
        return out


def pairs_file(path: Path, n: int) -> Path:
    """pair_rows(n) with the BAD_ROWS that fall within them, as a CSV file."""
    rows = pair_rows(n)
    for at in sorted(BAD_ROWS, reverse=True):
        if at <= len(rows):
            rows.insert(at, BAD_ROWS[at])
    return write_rows(path, rows)


@pytest.fixture(scope="module")
def pairs(shared) -> Dataset:
    return Dataset("pairs", pairs_file(shared / "pairs.csv", 3000), TUNING, "pairs")


@pytest.fixture(scope="module")
def pairs_buckets(pairs) -> Dataset:
    """The pairs input with 8 shuffle buckets (214 kB / 30 kB) and shards of at most 300 rows: many files
    to spill, group, write and name."""
    return Dataset("pairs_buckets", pairs.csv, (*TUNING, "--shard-rows", "300"), "pairs", bucket_bytes=30_000)


@pytest.fixture(scope="module")
def pairs_size(shared) -> Dataset:
    """The first 1500 rows of the pairs input (and the bad row among them) sampled down to 500 rows with
    --size: the only step with a CombineGlobally feeding a side input (AsSingleton) of a ParDo over the same
    rows. The README promises the same rows on every runner. (Half the pairs input: with --size the Dask job
    takes over twice as long as without, growing with the rows, and the sampling works the same at any size.)

    (Known at the time of writing: Beam 2.77's DaskRunner gives such a ParDo a side input computed from
    every upstream element twice, e.g. CombineGlobally(sum) over range(10) is seen as 90, so --size N keeps
    N/2 rows there.)"""
    return Dataset("pairs_size", pairs_file(shared / "pairs-1500.csv", 1500), (*TUNING, "--size", "500"), "pairs",
                   size=500)


@pytest.fixture(scope="module")
def quora(shared) -> Dataset:
    """Finetuner's labeled example, with near-duplicate clusters (it has 9) and a split: both stages on
    every runner."""
    return Dataset("quora", QUORA, ("--is-labeled", "--near-duplicates", "--split", "train=0.8,test=0.2", *TUNING),
                   "labeled")


@pytest.fixture(scope="module")
def generated_labeled(shared) -> Dataset:
    return Dataset("labeled", write_rows(shared / "labeled.csv", labeled_rows()),
                   ("--is-labeled", "--range-bytes", "8192", "--batch-rows", "128"), "labeled")


DATASETS = ["pairs", "pairs_buckets", "pairs_size", "quora"]


@pytest.fixture(params=DATASETS)
def dataset(request) -> Dataset:
    return request.getfixturevalue(request.param)


_baselines: dict = {}


def baseline_of(dataset: Dataset, shared: Path) -> Path:
    """The dataset's output from the default DirectRunner (for inputs this small, one worker in this process),
    computed once per module."""
    if dataset.name not in _baselines:
        out = dataset.run(shared, label="direct")
        check_dataset(out, dataset)
        _baselines[dataset.name] = out
    return _baselines[dataset.name]


@pytest.fixture
def baseline(dataset, shared) -> Path:
    return baseline_of(dataset, shared)


# ------------------------------------------------------------------------------------------- services

@pytest.fixture(scope="module")
def dask_cluster(shared):
    """A local Dask cluster started for this module: fresh worker processes import the code as it is now.
    The workers get an empty private /tmp when the machine allows it (see module docstring)."""
    logs = shared / "logs"
    logs.mkdir(exist_ok=True)
    tmp = Path(tempfile.gettempdir()).resolve()
    # Hiding /tmp only works when the workers need nothing from it: not the shared folder, not this
    # checkout (the editable install points here), not the Python they run.
    needed = (shared.resolve(), Path(__file__).resolve().parents[2], Path(sys.executable).resolve(), Path(sys.prefix))
    hide = not any(p.is_relative_to(tmp) for p in needed) and can_hide_tmp()
    with _running("dask cluster", lambda: DaskCluster(logs, workers=2, hide_tmp=hide)) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def job_service(shared):
    logs = shared / "logs"
    logs.mkdir(exist_ok=True)
    with _running("job service", lambda: JobService(logs)) as service:
        yield service


@contextlib.contextmanager
def _running(name: str, start):
    """start() -> a service (its start-up timed), stopped afterwards with none of its processes left alive."""
    started = time.monotonic()
    service = start()
    TIMINGS[f"{name} start"] = round(time.monotonic() - started, 1)
    try:
        yield service
    finally:
        pids = service.pids()
        service.stop()
        assert not [p for p in pids if _alive(p)], f"{name} processes left running: {pids}"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def dask_back_to_back(generated_labeled, pairs, dask_cluster, shared) -> tuple[Path, Path]:
    """(labeled output, pairs output) of two jobs run on the Dask cluster one right after the other:
    generated_labeled, then pairs with --input and --output relative to the launcher's working directory
    (the workers' is /). Three tests read the pairs output -- the back-to-back test, the relative-paths test
    and test_dask_runner_gives_identical_documents[pairs] (whose other datasets run with absolute paths) --
    so the Dask job on pairs runs once, not three times."""
    first = generated_labeled.run(shared, *dask_args(dask_cluster), label="dask-back-to-back")
    out_name = "out-pairs-dask-relative"
    cwd = os.getcwd()
    os.chdir(shared)
    try:
        started = time.monotonic()
        rc = main(["prepare", "--input", pairs.csv.name, "--output", out_name, *pairs.options,
                   *dask_args(dask_cluster)])
        TIMINGS["pairs/dask-relative-back-to-back"] = round(time.monotonic() - started, 1)
    finally:
        os.chdir(cwd)
    assert rc == 0, f"prepare returned {rc}"
    return first, shared / out_name


def dask_args(cluster: DaskCluster) -> tuple:
    return DASK_RUNNER, f"--dask_client_address={cluster.client_address}"


def portable_args(service: JobService) -> tuple:
    return "--runner=PortableRunner", f"--job_endpoint={service.endpoint}", "--environment_type=LOOPBACK"


@pytest.fixture(scope="module", autouse=True)
def report_timings():
    yield
    if TIMINGS:
        print("\nrunner test timings (s): " + ", ".join(f"{k}={v}" for k, v in TIMINGS.items()))


# -------------------------------------------------------------------------------------------- checks

def digests(out: Path, kind: str) -> dict:
    """{file name: sha256} of a dataset's Parquet files of one kind."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / kind).glob("*.parquet"))}


def check_dataset(out: Path, dataset: Dataset) -> dict:
    """The run committed (_SUCCESS, no staging left), its counts reconcile, and its documents are the ones
    the input defines (computed here with Python's csv module); returns the manifest."""
    assert sorted(p.name for p in out.iterdir()) == DATASET_ENTRIES, sorted(p.name for p in out.iterdir())
    assert not list(out.glob("_staging-*"))
    manifest = pipelines.load_manifest(str(out))
    assert manifest["layout"] == dataset.layout
    assert manifest["reconciliation"]["reconciled"] is True, manifest["reconciliation"]
    table = pipelines.load_table(str(out))
    got = collections.Counter(zip(table.column("text").to_pylist(), table.column("label").to_pylist()))
    rows = read_rows(dataset.csv)
    good = [r for r in rows if len(r) == 2]
    if dataset.layout == "pairs":
        # One document per distinct (content, label): the query and the document, both labelled by the query.
        expected = collections.Counter({(q, q) for q, _ in good} | {(d, q) for q, d in good})
    else:
        expected = collections.Counter((text, label) for text, label in good)
    counts = manifest["counts"]
    if dataset.size is None:
        assert got == expected, (f"{sum((expected - got).values())} documents missing, e.g. "
                                 f"{list(expected - got)[:3]}; {sum((got - expected).values())} unexpected, "
                                 f"e.g. {list(got - expected)[:3]}")
    else:
        # --size N keeps exactly N of the good rows; their documents are some of the full set's.
        kept, sampled_out = counts.get("rows_documented", 0), counts.get("sampled_out", 0)
        assert (kept, sampled_out) == (dataset.size, len(good) - dataset.size), (
            f"--size {dataset.size} kept {kept} of {len(good)} rows (sampled_out {sampled_out})")
        assert not got - expected, list(got - expected)[:3]
    assert len(set(table.column("id").to_pylist())) == table.num_rows
    if dataset.bucket_bytes is not None:
        assert len(manifest["shards"]["documents"]) > 1
    assert counts["rows_read"] == len(rows)
    assert counts.get("dead_letters", 0) == len(rows) - len(good)
    assert counts["documents_written"] == table.num_rows
    assert pipelines.load_dead_letters(str(out)).num_rows == len(rows) - len(good)
    return manifest


# Counts of how a run went, not of the data: spill files depend on how the runner cut the work into bundles.
EXECUTION_COUNTS = {"staged_objects"}


def assert_same_dataset(out: Path, baseline: Path) -> None:
    """The same counts, the same documents table, byte-identical documents and dead-letters Parquet files
    and the same shards as the DirectRunner's (one process) output."""
    got, want = pipelines.load_manifest(str(out)), pipelines.load_manifest(str(baseline))
    data_counts = (set(got["counts"]) | set(want["counts"])) - EXECUTION_COUNTS
    differing = {k: (got["counts"].get(k), want["counts"].get(k))
                 for k in sorted(data_counts) if got["counts"].get(k) != want["counts"].get(k)}
    assert not differing, f"counts differ from the DirectRunner's, as (this runner, DirectRunner): {differing}"
    table, expected = pipelines.load_table(str(out)), pipelines.load_table(str(baseline))
    ids, expected_ids = set(table.column("id").to_pylist()), set(expected.column("id").to_pylist())
    assert ids == expected_ids, (f"{table.num_rows} documents vs the DirectRunner's {expected.num_rows}: "
                                 f"{len(expected_ids - ids)} ids missing, {len(ids - expected_ids)} extra")
    assert table.equals(expected)
    assert digests(out, "documents"), "no documents files"
    assert digests(out, "documents") == digests(baseline, "documents")
    assert digests(out, "dead_letters") == digests(baseline, "dead_letters")
    assert digests(out, "duplicates") == digests(baseline, "duplicates")
    assert got["shards"] == want["shards"]


# --------------------------------------------------------------------------------------------- tests

def test_direct_runner_threads_are_byte_identical(dataset, baseline, shared):
    """DirectRunner multi_threading with 2 workers (the default past a few thousand rows) == one worker in
    this process (the default for these small inputs), byte for byte."""
    out = dataset.run(shared, *THREADS, label="threads")
    assert_same_dataset(out, baseline)
    check_dataset(out, dataset)


def test_direct_runner_multi_processing_is_byte_identical(dataset, baseline, shared):
    """DirectRunner multi_processing with 2 workers == one process, byte for byte."""
    out = dataset.run(shared, *MULTI_PROCESSING, label="multi")
    assert_same_dataset(out, baseline)
    check_dataset(out, dataset)


def test_dask_workers_are_fresh_and_do_not_see_the_launcher_tmp(dask_cluster, tmp_path):
    """The fixture's workers import the project from this checkout; when /tmp is hidden from them they
    cannot see the launcher's temporary folder (the precondition of the Dask tests below)."""
    origins = dask_cluster.run_on_workers(lambda: __import__("transforms.stage", fromlist=["_"]).__file__)
    assert len(origins) == 2
    assert set(origins.values()) == {str(ROOT / "transforms" / "stage.py")}
    if not dask_cluster.hide_tmp:
        pytest.skip("cannot hide /tmp from the Dask workers here (needs root and util-linux unshare); "
                    "the Dask tests still run, with inputs and outputs in a shared folder")
    marker = tmp_path / "only-the-launcher-sees-this"
    marker.write_text("x")
    assert set(dask_cluster.run_on_workers(os.path.exists, str(marker)).values()) == {False}
    assert set(dask_cluster.run_on_workers(os.path.exists, str(ROOT / "setup.py")).values()) == {True}


def test_dask_runner_gives_identical_documents(dataset, baseline, dask_cluster, shared, request):
    """DaskRunner on the local cluster == DirectRunner: byte-identical Parquet, same counts and shards;
    the job committed (_SUCCESS written, _staging-* removed) although every stage ran in other processes.
    (The pairs job is the second of dask_back_to_back, run once for three tests.)"""
    if dataset.name == "pairs":
        out = request.getfixturevalue("dask_back_to_back")[1]
    else:
        out = dataset.run(shared, *dask_args(dask_cluster), label="dask")
    assert (out / "_SUCCESS").is_file()
    assert not list(out.glob("_staging-*"))
    assert_same_dataset(out, baseline)
    check_dataset(out, dataset)


def test_dask_runner_with_relative_paths(pairs, dask_back_to_back, shared):
    """--input and --output relative to the launcher's working directory (the workers' is /): the job must
    not depend on the launcher's cwd. (The pairs job of dask_back_to_back is run that way.)"""
    out = dask_back_to_back[1]
    check_dataset(out, pairs)
    assert_same_dataset(out, baseline_of(pairs, shared))


def test_dask_runs_two_different_jobs_back_to_back(generated_labeled, pairs, dask_back_to_back, shared):
    """Two jobs with different inputs, layouts and tuning, one right after the other on the same workers:
    both outputs are right (no state kept in the worker processes between jobs), and equal the
    DirectRunner's."""
    first, second = dask_back_to_back
    check_dataset(first, generated_labeled)
    check_dataset(second, pairs)
    assert pipelines.load_manifest(str(first))["counts"]["rows_read"] == len(labeled_rows())
    assert_same_dataset(first, baseline_of(generated_labeled, shared))
    assert_same_dataset(second, baseline_of(pairs, shared))


def test_portable_runner_gives_identical_documents(dataset, baseline, job_service, shared):
    """PortableRunner on Beam's local job service (LOOPBACK workers) == DirectRunner, byte for byte."""
    out = dataset.run(shared, *portable_args(job_service), label="portable")
    assert_same_dataset(out, baseline)
    check_dataset(out, dataset)
