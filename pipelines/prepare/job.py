"""A prepare job, planned: every decision a run needs, made in the launcher before the pipeline starts.

plan_job checks the options, the inputs (pipelines.prepare.inputs) and the output, and returns a
PrepareJob, or raises ConfigError with one sentence.
"""
import dataclasses
import datetime
import math
import os
import uuid
from typing import Optional

from pipelines.prepare.inputs import InputPlan, plan_inputs
from schemas.options import (ConfigError, CSVOptions, DuplicateOptions, MediaOptions, OutputOptions, ReadTuning,
                            SplitOptions, work_units)
from schemas.version import VERSION
from transforms.media.host_limits import host_state_folder
from transforms.media.previous_dataset import PreviousDataset, open_previous
from transforms.staging import claim, remove_dead_stagings, shards_url, staging_url
from transforms.output_folder import check_replaceable
from transforms.layout import LayoutSpec
from transforms.storage import filesystem
from transforms.uris import redact
from transforms.write.formats import writers_for
from transforms.write.shard_writer import ShardWriter

MEDIA_BYTES_PER_FILE = 256 * 1024
KEY_BYTES_PER_FILE = 256  # --incremental-from: a medium's match key and place, in the reuse stage's join
LINK_BYTES_PER_ROW = 128  # --split: the links (node, local root: 16 bytes) of a row's documents, a few each
TOOL = f"finetune-etl {VERSION}"


@dataclasses.dataclass(frozen=True)
class PrepareJob:
    """Everything one run needs, decided before the pipeline starts."""

    inputs: InputPlan
    csv: CSVOptions
    output: OutputOptions
    tuning: ReadTuning
    run_id: str
    media: MediaOptions = MediaOptions()
    split: SplitOptions = SplitOptions()
    duplicates: DuplicateOptions = DuplicateOptions()
    incremental_from: Optional[str] = None  # a previous complete dataset whose documents this run may reuse
    previous: Optional[PreviousDataset] = None  # that dataset, as planned (None without --incremental-from)

    @property
    def staging(self) -> str:
        return staging_url(self.output.output, self.run_id)

    @property
    def shards(self) -> str:
        """Where the run writes its shards: the staging folder, or its version on object stores."""
        return shards_url(self.output.output, self.run_id)

    @property
    def writers(self) -> tuple[type[ShardWriter], ...]:
        """The output formats of the run."""
        return writers_for(self.output.format)

    @property
    def loads_media(self) -> bool:
        """Whether any document may point at an image or mesh this run loads."""
        wanted = {"image"} if self.media.convert_to_blob else set()
        wanted |= {"mesh"} if self.media.create_point_clouds else set()
        return bool(wanted & set(self.inputs.modalities)) or bool(self.inputs.docarray_files and wanted)

    @property
    def buckets(self) -> int:
        """Write buckets: enough that one holds at most about `bucket_bytes` of input, or of media when media
        load (estimated per row by media_bytes_per_row); a multiple of 4 when more than one (work_units)."""
        total = sum(f.size for f in self.inputs.files) + sum(size for _, size in self.inputs.docarray_files)
        if self.loads_media:
            total = max(total, self.inputs.estimated_rows * self.media_bytes_per_row)
        return work_units(total, self.tuning.bucket_bytes)

    @property
    def media_bytes_per_row(self) -> int:
        """What a row's loaded media add to its documents, estimated from its content columns: an image's
        bytes (kept as they are: MEDIA_BYTES_PER_FILE, sizes unknown) and a mesh's point cloud (its float32
        points only: the mesh file is not kept); two images for .docs inputs, whose fields are unknown."""
        per_file = {"image": MEDIA_BYTES_PER_FILE if self.media.convert_to_blob else 0,
                    "mesh": 12 * self.media.point_cloud_size if self.media.create_point_clouds else 0}
        row = sum(per_file.get(kind, 0) for kind in self.inputs.modalities)
        return max(row, 2 * MEDIA_BYTES_PER_FILE) if self.inputs.docarray_files else row

    @property
    def layout(self) -> LayoutSpec:
        return LayoutSpec(self.inputs.layout, self.inputs.modalities, self.csv.score_scale,
                          modalities_forced=self.csv.modalities is not None, media_root=self.inputs.media_root)

    @property
    def link_partitions(self) -> int:
        """Partitions of the split stage's links (--split): enough that one holds about `bucket_bytes` of them.
        Not the write buckets: each partition's step reads every bucket's links file, and buckets filled with
        media are many (40 for 10,000 photos: 1,600 reads, where one partition makes 40)."""
        return max(1, math.ceil(self.inputs.estimated_rows * LINK_BYTES_PER_ROW / self.tuning.bucket_bytes))

    @property
    def key_buckets(self) -> int:
        """Buckets of the reuse stage's join (--incremental-from): enough that one holds about `bucket_bytes`
        of match keys and places of this run's media and the previous dataset's."""
        files = 2 * max(self.inputs.estimated_rows, self.previous.documents if self.previous else 0)
        return max(1, math.ceil(files * KEY_BYTES_PER_FILE / self.tuning.bucket_bytes))

    @property
    def reuses_media(self) -> bool:
        """Whether media may be taken from a previous dataset (--incremental-from, a run that loads media with
        the media options that made it)."""
        return self.previous is not None and not self.previous.refused

    def manifest(self) -> dict:
        return {
            "format_version": 1,
            "tool": TOOL,
            "run_id": self.run_id,
            "layout": self.inputs.layout,
            "clip": self.layout.is_clip,
            "modalities": list(self.inputs.modalities),
            "media_root": None if self.inputs.media_root is None else redact(self.inputs.media_root),
            "opt_outs": "ignored (--ignore-opt-outs)" if self.media.ignore_opt_outs else "honoured",
            "options": {"csv": dataclasses.asdict(self.csv), "output": dataclasses.asdict(self.output),
                        "media": _without(dataclasses.asdict(self.media), "host_state"),
                        "split": dataclasses.asdict(self.split),
                        "duplicates": dataclasses.asdict(self.duplicates)},
            "inputs": [
                {"url": redact(f.url), "size": f.size, "delimiter": f.dialect.delimiter,
                 "skipinitialspace": f.dialect.skipinitialspace, "encoding": f.encoding, "header": f.header,
                 "fields": f.expected_fields, **decision.manifest()}
                for f, decision in zip(self.inputs.files, self.inputs.decisions, strict=True)
            ] + [{"url": redact(url), "size": size, "format": "docarray"} for url, size in self.inputs.docarray_files],
            **({"incremental": self.previous.manifest()} if self.previous is not None else {}),
        }


def _without(options: dict, name: str) -> dict:
    """An options dict without one run-local entry (e.g. a temp folder that says nothing about the data)."""
    return {key: value for key, value in options.items() if key != name}


def new_run_id() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def check_output(output: OutputOptions, staging: str) -> None:
    """ConfigError when the output holds a complete dataset (without --overwrite), holds files that are not
    a dataset of ours, or cannot be written."""
    fs, path = filesystem(output.output)
    if fs.isfile(path):
        raise ConfigError(f"--output {output.output!r} is a file; give a folder.")
    check_replaceable(output.output, output.overwrite)
    remove_dead_stagings(output.output)
    try:
        claim(staging)
    except Exception as exc:  # any storage error means the same thing to the user
        raise ConfigError(f"--output {output.output!r} is not writable ({type(exc).__name__}: {exc}).") from None


def resolve_output(url: str, run_id: str, now: datetime.datetime) -> str:
    """--output with {date} (YYYY-MM-DD, UTC) and {run_id} filled in; local paths made absolute."""
    url = url.replace("{date}", now.strftime("%Y-%m-%d")).replace("{run_id}", run_id)
    return url if "://" in url else os.path.abspath(url)


def plan_job(input_patterns: list[str], csv: CSVOptions, output: OutputOptions, tuning: ReadTuning,
             run_id: Optional[str] = None, media: MediaOptions = MediaOptions(),
             split: SplitOptions = SplitOptions(), duplicates: DuplicateOptions = DuplicateOptions(),
             incremental_from: Optional[str] = None) -> PrepareJob:
    """Options -> a PrepareJob, checking inputs and output first (ConfigError on a mistake)."""
    writers_for(output.format)  # an unknown format is a mistake before any input is read
    run_id = run_id or new_run_id()
    output = dataclasses.replace(output, output=resolve_output(
        output.output, run_id, datetime.datetime.now(datetime.timezone.utc)))
    media = dataclasses.replace(media, host_state=media.host_state or host_state_folder(run_id))
    job = PrepareJob(plan_inputs(input_patterns, csv), csv, output, tuning, run_id, media, split, duplicates,
                     incremental_from)
    if incremental_from:
        job = dataclasses.replace(job, previous=open_previous(incremental_from, media, TOOL, job.loads_media))
    if split.by == "document" and job.inputs.layout != "labeled":
        raise ConfigError(f"--split-by document applies to labeled rows; these inputs are read as {job.inputs.layout} "
                          "(whose groups are fixed: see the README's splits section).")
    if duplicates.drop and job.inputs.layout == "pairs" and not job.layout.is_clip:
        raise ConfigError("--drop-near-duplicates would drop queries of query-document pairs and leave their "
                          "documents without them; use --near-duplicates alone (clusters are marked and kept in one "
                          "split), or read the rows as --is-labeled.")
    check_output(output, job.staging)
    return job
