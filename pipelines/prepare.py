"""The prepare job: CSV files in, a labeled, sharded dataset out.

    python -m pipelines.prepare --input data/*.csv --output out/ [options] [Beam pipeline options]

Composes the stages (read -> sample -> layout -> write -> commit); holds no data logic of its own.
"""
import contextlib
import dataclasses
import datetime
import math
import os
import posixpath
import sys
import uuid
from typing import Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.inputs import InputPlan, plan_inputs
from pipelines.progress import PROGRESS_FOLDER, ProgressLine
from schemas.options import ConfigError, CSVOptions, MediaOptions, OutputOptions, ReadTuning
from transforms.commit import CommitOutput, staging_url
from transforms.counting import SumCounts
from transforms.layout import ApplyLayout, LayoutSpec
from transforms.outputs import COUNTS, DEAD_LETTERS, MAIN
from transforms.read_csv import ReadCsv, plan_ranges
from transforms.read_docarray import ReadDocLists
from transforms.sample import SampleRows
from transforms.storage import MANIFEST, SUCCESS, filesystem, join_url, write_bytes
from transforms.write import WriteDeadLetters, WriteDocuments

VERSION = "0.1.0"
MEDIA_BYTES_PER_FILE = 256 * 1024


@dataclasses.dataclass(frozen=True)
class PrepareJob:
    """Everything one run needs, decided before the pipeline starts."""

    inputs: InputPlan
    csv: CSVOptions
    output: OutputOptions
    tuning: ReadTuning
    run_id: str
    media: MediaOptions = MediaOptions()

    @property
    def staging(self) -> str:
        return staging_url(self.output.output, self.run_id)

    @property
    def loads_media(self) -> bool:
        """Whether any document may point at an image or mesh this run loads."""
        wanted = {"image"} if self.media.convert_to_blob else set()
        wanted |= {"mesh"} if self.media.create_point_clouds else set()
        return bool(wanted & set(self.inputs.modalities)) or bool(self.inputs.docarray_files and wanted)

    @property
    def buckets(self) -> int:
        """Write buckets: enough that one holds about `bucket_bytes` of input, or of media when media load
        (estimated at MEDIA_BYTES_PER_FILE per file)."""
        total = sum(f.size for f in self.inputs.files) + sum(size for _, size in self.inputs.docarray_files)
        if self.loads_media:
            total = max(total, self.inputs.estimated_rows * 2 * MEDIA_BYTES_PER_FILE)
        return max(1, math.ceil(total / self.tuning.bucket_bytes))

    @property
    def layout(self) -> LayoutSpec:
        return LayoutSpec(self.inputs.layout, self.inputs.modalities, self.csv.score_scale)

    def manifest(self) -> dict:
        return {
            "format_version": 1,
            "tool": f"finetune-etl {VERSION}",
            "run_id": self.run_id,
            "layout": self.inputs.layout,
            "clip": self.layout.is_clip,
            "modalities": list(self.inputs.modalities),
            "options": {"csv": dataclasses.asdict(self.csv), "output": dataclasses.asdict(self.output),
                        "media": dataclasses.asdict(self.media)},
            "inputs": [
                {"url": f.url, "size": f.size, "delimiter": f.dialect.delimiter,
                 "skipinitialspace": f.dialect.skipinitialspace, "encoding": f.encoding, "header": f.header,
                 "fields": f.expected_fields}
                for f in self.inputs.files
            ] + [{"url": url, "size": size, "format": "docarray"} for url, size in self.inputs.docarray_files],
        }


def new_run_id() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


OUR_ENTRIES = {SUCCESS, MANIFEST, "documents", "docarray", "dead_letters"}


def check_output(output: OutputOptions, staging: str) -> None:
    """ConfigError when the output holds a complete dataset (without --overwrite), holds files that are not
    a dataset of ours, or cannot be written."""
    fs, path = filesystem(output.output)
    if fs.exists(join_url(path, SUCCESS)) and not output.overwrite:
        raise ConfigError(f"--output {output.output!r} already holds a complete dataset; pass --overwrite to replace it.")
    if fs.isfile(path):
        raise ConfigError(f"--output {output.output!r} is a file; give a folder.")
    if fs.isdir(path):
        others = sorted(name for name in (posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))
                        if name not in OUR_ENTRIES and not name.startswith("_staging-"))
        if others:
            raise ConfigError(f"--output {output.output!r} holds files that are not a finetune-etl dataset "
                              f"({', '.join(others[:3])}); give an empty or new folder.")
    try:
        write_bytes(b"", join_url(staging, ".probe"))
    except Exception as exc:  # any storage error means the same thing to the user
        raise ConfigError(f"--output {output.output!r} is not writable ({type(exc).__name__}: {exc}).") from None


def build(pipeline: beam.Pipeline, job: PrepareJob, progress: bool = False, plan_here: bool = False) -> None:
    """Add the prepare job's stages to a pipeline (with progress markers for a terminal when asked).

    plan_here: cut the files into byte ranges now, in the launcher, and start from the ranges (for the
    DaskRunner, whose bags keep the partitioning of the first Create: one partition per range)."""
    candidates, dead, counts = [], [], []
    if job.inputs.files:
        progress_folder = join_url(job.staging, PROGRESS_FOLDER) if progress else None
        if plan_here:
            ranges = [r for f in job.inputs.files for r in plan_ranges(f, job.tuning.range_bytes)]
            inputs = pipeline | "InputRanges" >> beam.Create(ranges)
        else:
            inputs = pipeline | "Inputs" >> beam.Create(list(job.inputs.files))
        read = inputs | "ReadCsv" >> ReadCsv(job.tuning, progress_folder, planned=plan_here)
        rows, sample_counts = read[MAIN] | "SampleRows" >> SampleRows(job.csv.size, job.csv.sampling_rate)
        laid_out = rows | "ApplyLayout" >> ApplyLayout(job.layout)
        candidates.append(laid_out[MAIN])
        dead += [read[DEAD_LETTERS], laid_out[DEAD_LETTERS]]
        counts += [read[COUNTS], laid_out[COUNTS], *sample_counts]
    if job.inputs.docarray_files:
        doclists = (pipeline
                    | "DocListInputs" >> beam.Create([url for url, _ in job.inputs.docarray_files])
                    | "ReadDocLists" >> ReadDocLists(job.tuning.batch_rows))
        candidates.append(doclists[MAIN])
        dead.append(doclists[DEAD_LETTERS])
        counts.append(doclists[COUNTS])
    documents = candidates | "AllCandidates" >> beam.Flatten()
    if job.loads_media:
        from transforms.media import LoadMedia  # Pillow, trimesh and scipy load only for runs that need them

        loaded = documents | "LoadMedia" >> LoadMedia(job.media, job.tuning.media_batch_rows)
        documents = loaded[MAIN]
        dead.append(loaded[DEAD_LETTERS])
        counts.append(loaded[COUNTS])
    document_files, write_counts = documents | "WriteDocuments" >> WriteDocuments(
        job.staging, job.output, job.buckets, job.layout.removes_duplicates)
    dead_files = dead | "AllDeadLetters" >> beam.Flatten() | "WriteDeadLetters" >> WriteDeadLetters(
        job.staging, job.output, job.buckets)
    files_written = (document_files, dead_files) | "AllFiles" >> beam.Flatten()
    all_counts = (
        (*counts, write_counts)
        | "AllCounts" >> beam.Flatten()
        | "SumCounts" >> beam.CombineGlobally(SumCounts())
    )
    _ = (files_written, all_counts) | "Commit" >> CommitOutput(job.output.output, job.staging, job.manifest())


def resolve_output(url: str, run_id: str, now: datetime.datetime) -> str:
    """--output with {date} (YYYY-MM-DD, UTC) and {run_id} filled in; local paths made absolute."""
    url = url.replace("{date}", now.strftime("%Y-%m-%d")).replace("{run_id}", run_id)
    return url if "://" in url else os.path.abspath(url)


def plan_job(input_patterns: list[str], csv: CSVOptions, output: OutputOptions, tuning: ReadTuning,
             run_id: Optional[str] = None, media: MediaOptions = MediaOptions()) -> PrepareJob:
    """Options -> a PrepareJob, checking inputs and output first (ConfigError on a mistake)."""
    run_id = run_id or new_run_id()
    output = dataclasses.replace(output, output=resolve_output(
        output.output, run_id, datetime.datetime.now(datetime.timezone.utc)))
    job = PrepareJob(plan_inputs(input_patterns, csv), csv, output, tuning, run_id, media)
    check_output(output, job.staging)
    return job


def run(job: PrepareJob, beam_args: list[str]) -> dict:
    """Run the job on the runner the Beam arguments choose; returns the manifest written."""
    from pipelines.load import load_manifest

    on_dask = "DaskRunner" in (PipelineOptions(beam_args).view_as(StandardOptions).runner or "")
    if on_dask and not any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in beam_args):
        beam_args = [*beam_args, "--dask_partition_size=1"]
    runner = _runner(PipelineOptions(beam_args))
    if runner is not None and not any(a.startswith(("--direct_running_mode", "--direct_num_workers")) for a in beam_args):
        # Threads are the fastest local mode: pyarrow and numpy release the GIL (bench/RESULTS.md).
        beam_args = [*beam_args, "--direct_running_mode=multi_threading", f"--direct_num_workers={os.cpu_count() or 1}"]
    options = PipelineOptions(beam_args)
    progress = runner is not None and sys.stderr.isatty()
    pipeline = beam.Pipeline(runner=runner, options=options)
    build(pipeline, job, progress, plan_here=on_dask)
    try:
        with ProgressLine(job.staging, sum(f.size for f in job.inputs.files)) if progress else contextlib.nullcontext():
            pipeline.run().wait_until_finish()
    except BaseException:
        discard_staging(job.staging)
        raise
    return load_manifest(job.output.output)


def discard_staging(staging: str) -> None:
    """Remove a failed run's staged files (best effort: what cannot be removed now is only clutter)."""
    fs, path = filesystem(staging)
    try:
        fs.rm(path, recursive=True)
    except OSError:  # FileNotFoundError included: nothing was staged
        pass


def _runner(options: PipelineOptions):
    """The DirectRunner's FnApiRunner engine when the DirectRunner is asked for (or nothing is):
    Beam's default DirectRunner first tries Prism, which downloads a binary from the internet."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    name = options.view_as(StandardOptions).runner
    return FnApiRunner() if name in (None, "DirectRunner", "direct") else None


def main(argv: Optional[list[str]] = None) -> int:
    from pipelines.cli import main as cli_main

    return cli_main(["prepare", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
