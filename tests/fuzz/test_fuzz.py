"""Run each atheris fuzz target in tests/fuzz/ for a bounded time, and replay every saved failing input.

A run that finds a failing input fails the test and copies the input to tests/fuzz/regressions/<target>/,
where it becomes a regression case: each file there is replayed here as a fast test.
FINETUNE_ETL_FUZZ_SECONDS sets the fuzzing time per target (default 20; 0 skips fuzzing, keeps replays).
Each target is a single-threaded process, so the targets run side by side, as many at a time as there are CPU
cores (on an otherwise idle machine each fuzzes on a core of its own for its full time, as it would alone):
with 2 cores the three take about as long as two of them one after the other, instead of all three.
FINETUNE_ETL_FUZZ_AT_ONCE=1 runs them one after the other (on a machine busy with other work, where
two fuzzers at once would each get less than a core).
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris); it runs the fuzz targets")

# Imported before the targets, so replays here run the code uninstrumented (the targets instrument
# these modules only when they import them first, as they do in their own fuzzing process).
import transforms.read.csv_parse  # noqa: E402,F401
import transforms.read.csv_scan  # noqa: E402,F401
import transforms.media.images  # noqa: E402,F401
import transforms.media.mesh_readers  # noqa: E402,F401
import transforms.media.meshes  # noqa: E402,F401

FUZZ = Path(__file__).resolve().parent
TARGETS = ("fuzz_csv_splitter", "fuzz_media", "fuzz_mesh_readers")
SECONDS = int(os.environ.get("FINETUNE_ETL_FUZZ_SECONDS", "20"))
INPUT_SECONDS = 20  # libFuzzer -timeout: one input taking longer is a failure (a hang)
RSS_LIMIT_MB = 2560
# Fuzzing processes at a time: one per core unless FINETUNE_ETL_FUZZ_AT_ONCE says otherwise.
AT_ONCE = max(1, min(len(TARGETS), int(os.environ.get("FINETUNE_ETL_FUZZ_AT_ONCE", len(os.sched_getaffinity(0))))))
# fuzz_media starts first: it instruments PIL and trimesh as it imports them (10-20 s before it fuzzes).
START_ORDER = ("fuzz_media", "fuzz_mesh_readers", "fuzz_csv_splitter")


def target_module(target: str):
    spec = importlib.util.spec_from_file_location(target, FUZZ / f"{target}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def regression_cases() -> list:
    return [pytest.param(target, path, id=f"{target}/{path.name}")
            for target in TARGETS for path in sorted((FUZZ / "regressions" / target).glob("*")) if path.is_file()]


@pytest.mark.parametrize("target,path", regression_cases())
def test_saved_failing_input_now_passes(target, path):
    """A once-failing input: the target's properties hold for it."""
    target_module(target).check(path.read_bytes())


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus_passes(target):
    """Every seed input satisfies the target's properties (a broken seed would hide real findings)."""
    module = target_module(target)
    seeds = sorted((FUZZ / "corpus" / target).glob("*"))
    assert seeds
    for path in seeds:
        module.check(path.read_bytes())


def fuzz(target: str, folder: Path) -> tuple[subprocess.CompletedProcess, list[Path]]:
    """libFuzzer drives the target for SECONDS from its seed corpus: (the run, the failing inputs it saved)."""
    artifacts = folder / "artifacts"
    artifacts.mkdir(parents=True)
    new_inputs = folder / "corpus"  # the first corpus folder gets the new inputs; the seeds stay as they are
    new_inputs.mkdir()
    command = [sys.executable, str(FUZZ / f"{target}.py"), f"-max_total_time={SECONDS}", f"-timeout={INPUT_SECONDS}",
               f"-rss_limit_mb={RSS_LIMIT_MB}", f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
               str(new_inputs), str(FUZZ / "corpus" / target)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 180, check=False)
    return run, sorted(artifacts.iterdir())


@pytest.fixture(scope="module")
def fuzz_runs(request, tmp_path_factory):
    """The fuzz() run of each target this session fuzzes, AT_ONCE at a time in START_ORDER, all started when
    the first fuzzing test asks: {target: future of its result}."""
    selected = {item.callspec.params["target"] for item in request.session.items
                if item.path == request.node.path and item.originalname == "test_fuzzing_finds_no_failing_input"}
    with ThreadPoolExecutor(AT_ONCE) as pool:
        yield {target: pool.submit(fuzz, target, tmp_path_factory.mktemp(target))
               for target in START_ORDER if target in selected}


@pytest.mark.skipif(SECONDS <= 0, reason="FINETUNE_ETL_FUZZ_SECONDS=0: fuzzing skipped")
@pytest.mark.parametrize("target", TARGETS)
def test_fuzzing_finds_no_failing_input(target, fuzz_runs):
    """libFuzzer drives the target for SECONDS from its seed corpus; any failing input is saved as a regression."""
    run, found = fuzz_runs[target].result()
    if run.returncode == 0 and not found:
        return
    saved = []
    for path in found:
        destination = FUZZ / "regressions" / target / path.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        saved.append(str(destination.relative_to(FUZZ.parent.parent)))
    tail = "\n".join(run.stderr.splitlines()[-40:])
    pytest.fail(f"{target} found a failing input (exit code {run.returncode}); saved as {saved or 'nothing'}; "
                f"replay it with test_saved_failing_input_now_passes. libFuzzer's output ends:\n{tail}")
