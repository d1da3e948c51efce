"""Run a planned prepare job on the runner the Beam arguments choose, and clean up after a failed run."""
import contextlib
import os
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.datasets.load import load_manifest
from pipelines.prepare.build import build
from pipelines.prepare.job import PrepareJob
from pipelines.prepare.progress import ProgressLine
from transforms.commit import discard_version, unpublished_reason
from transforms.media.host_limits import remove_host_state
from transforms.output_folder import OutputTaken
from transforms.staging import remove_staging


def run(job: PrepareJob, beam_args: list[str], progress_every: float = 30.0) -> dict:
    """Run the job; returns the manifest written. On a local runner (the DirectRunner, Dask) progress is
    shown on stderr: a line rewritten every second on a terminal, else a line every `progress_every`
    seconds (0: none)."""
    if job.previous is not None and job.previous.refused:
        print(job.previous.note(), file=sys.stderr)  # --incremental-from, but every medium loads again
    on_dask = "DaskRunner" in (PipelineOptions(beam_args).view_as(StandardOptions).runner or "")
    if on_dask and not any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in beam_args):
        beam_args = [*beam_args, "--dask_partition_size=1"]
    runner = local_runner(PipelineOptions(beam_args))
    if runner is not None and not any(a.startswith(("--direct_running_mode", "--direct_num_workers")) for a in beam_args):
        beam_args = [*beam_args, *local_mode(job)]
    options = PipelineOptions(beam_args)
    answer_notebook_probe()
    terminal = sys.stderr.isatty()
    progress = (runner is not None or on_dask) and (terminal or progress_every > 0)
    pipeline = beam.Pipeline(runner=runner, options=options)
    build(pipeline, job, progress, plan_here=on_dask)
    line = ProgressLine(job.staging, sum(f.size for f in job.inputs.files), 1.0 if terminal else progress_every,
                        terminal) if progress else contextlib.nullcontext()
    try:
        with line:
            pipeline.run().wait_until_finish()
    except BaseException:
        discard_run(job)
        raise
    finally:
        remove_host_state(job.media.host_state)  # per-host slots, given-up hosts, robots.txt copies
    taken = unpublished_reason(job.staging)
    if taken:  # another run published to --output while this one ran
        discard_run(job)
        raise OutputTaken(taken)
    discard_staging(job.staging)  # what is left of it: progress markers written while the commit ran
    return load_manifest(job.output.output)


SMALL_TEXT_ROWS = 5_000  # a run of at most this many rows (about) runs on one in-process worker,
SMALL_MEDIA_ROWS = 500  # or of this many when it loads media (the files still decode on every core)


def local_mode(job: PrepareJob) -> list[str]:
    """The DirectRunner's mode for a job, as Beam arguments: a worker thread per core (the fastest mode for
    real inputs: pyarrow and numpy release the GIL, bench/RESULTS.md), or for a small input one worker in
    this process, which starts no gRPC data plane and no worker threads (0.1-0.3 s of a 2.5 s run)."""
    small = SMALL_MEDIA_ROWS if job.loads_media else SMALL_TEXT_ROWS
    if job.inputs.estimated_rows <= small:
        return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    return ["--direct_running_mode=multi_threading", f"--direct_num_workers={os.cpu_count() or 1}"]


def discard_run(job: PrepareJob) -> None:
    """Remove what a run that did not publish wrote: its staging, and on object stores its version."""
    discard_staging(job.staging)
    try:
        discard_version(job.output.output, job.run_id)
    except OSError:  # best effort, like the staging: the next publish removes unnamed versions
        pass


def discard_staging(staging: str) -> None:
    """Remove a failed run's staged files (best effort: what cannot be removed now is only clutter)."""
    try:
        remove_staging(staging)
    except OSError:  # best effort
        pass


def answer_notebook_probe() -> None:
    """Beam asks, while it builds and runs a pipeline, whether it runs inside IPython (to label and clean up
    for notebooks), and imports IPython to ask when it is installed: 0.6-0.8 s of a small run. A process that
    has not imported IPython is not inside it, so the question is answered here, in the two places Beam 2.77
    asks it (pipeline.py's own name for it, and interactive_utils' for its notebook checks). Inside IPython,
    Beam still asks."""
    if "IPython" in sys.modules:
        return
    from apache_beam import pipeline
    from apache_beam.utils import interactive_utils

    pipeline.is_in_ipython = interactive_utils.is_in_ipython = lambda: False


def local_runner(options: PipelineOptions):
    """The DirectRunner's FnApiRunner engine when the DirectRunner is asked for (or nothing is), else None:
    Beam's default DirectRunner first tries Prism, which downloads a binary from the internet.

    Its embedded SDK harness flushes data streams every second from another thread, even in the middle of
    an element a Python coder is writing; the runner decodes each flushed message on its own, so the rest of
    the element becomes garbage (one seen with 83 million windows, memory growing until the OOM killer).
    Beam 2.77 takes no option for it in multi_threading mode, so the periodic flush is turned off here; the
    streams are still flushed by size and at the end of every bundle. Batches also cross every shuffle as
    bytes (transforms.coders.batch_bytes), which holds on every runner."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner, worker_handlers

    name = options.view_as(StandardOptions).runner
    if name not in (None, "DirectRunner", "direct"):
        return None
    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0
    return FnApiRunner()
