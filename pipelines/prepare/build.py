"""The prepare job's pipeline: the stages, in the order the data flows through them.

    read (CSV byte ranges, or .docs files) -> sample -> layout -> [reuse] media -> group -> [near duplicates] -> [split]
    -> write
    -> dead letters -> duplicates -> commit

Every stage takes and returns a transforms.stage.StageOutput (main, dead letters, counts), so the job is
one chain; this module holds no data logic of its own.
"""
import apache_beam as beam

from pipelines.prepare.job import PrepareJob
from pipelines.prepare.progress import PROGRESS_FOLDER, MarkProgress
from transforms.apply_layout import ApplyLayout
from transforms.commit import CommitOutput
from transforms.group import GroupDocuments
from transforms.read.byte_ranges import plan_ranges
from transforms.read.read_csv import ReadCsv
from transforms.sample import SampleRows
from transforms.stage import StageOutput
from transforms.storage import join_url
from transforms.write.dead_letters import WriteDeadLetters
from transforms.write.duplicates import WriteDuplicates
from transforms.write.write_shards import WriteShards


def build(pipeline: beam.Pipeline, job: PrepareJob, progress: bool = False, plan_here: bool = False) -> StageOutput:
    """Add the prepare job's stages to a pipeline (with progress markers for a terminal when asked);
    returns the flow whose main PCollection holds the manifest written.

    plan_here: cut the files into byte ranges now, in the launcher, and start from the ranges (for the
    DaskRunner, whose bags keep the partitioning of the first Create: one partition per range)."""
    candidates = []
    if job.inputs.files:
        candidates.append(
            _csv_inputs(pipeline, job, plan_here)
            | "ReadCsv" >> ReadCsv(job.tuning, join_url(job.staging, PROGRESS_FOLDER) if progress else None,
                                   planned=plan_here)
            | "SampleRows" >> SampleRows(job.csv.size, job.csv.sampling_rate)
            | "ApplyLayout" >> ApplyLayout(job.layout))
    if job.inputs.docarray_files:
        from transforms.read.read_docarray import ReadDocLists  # docarray imports torch whenever it is installed
        candidates.append(
            StageOutput.start(pipeline | "DocListInputs" >> beam.Create([url for url, _ in job.inputs.docarray_files]))
            | "ReadDocLists" >> ReadDocLists(job.tuning.batch_rows))
    flow = candidates[0] if len(candidates) == 1 else candidates[0].join(candidates[1], "AllCandidates")
    if job.loads_media:
        from transforms.media.load_media import LoadMedia  # Pillow, trimesh and scipy load only for runs that need them

        load = LoadMedia(job.media, job.tuning.media_batch_rows, job.inputs.media_root)
        if job.reuses_media:  # --incremental-from: documents whose media are in the previous dataset skip `load`
            from transforms.media.reuse_media import ReuseMedia

            load = ReuseMedia(job.previous, job.media, job.inputs.media_root, job.staging, job.key_buckets, load)
        flow = flow | "LoadMedia" >> load
    flow = flow | "GroupDocuments" >> GroupDocuments(job.staging, job.buckets, job.layout.removes_duplicates)
    if job.duplicates.near:
        from transforms.duplicates.near_duplicates import NearDuplicates  # Pillow and scipy load only when asked

        flow = flow | "NearDuplicates" >> NearDuplicates(job.duplicates, job.staging, job.buckets)
    if job.split.fractions:
        from transforms.split.split_documents import SplitDocuments  # scipy loads only for runs that split

        flow = flow | "SplitDocuments" >> SplitDocuments(job.split, job.inputs.layout, job.staging, job.link_partitions)
    flow = (flow
            | "WriteShards" >> WriteShards(job.shards, job.output, job.writers)
            | "WriteDeadLetters" >> WriteDeadLetters(job.shards, job.output, job.buckets)
            | "WriteDuplicates" >> WriteDuplicates(job.shards, job.output))
    if progress:
        for i, counts in enumerate(flow.counts):
            _ = counts | f"Progress{i}" >> beam.ParDo(MarkProgress(join_url(job.staging, PROGRESS_FOLDER)))
    return flow | "Commit" >> CommitOutput(job.output.output, job.staging, job.manifest())


def _csv_inputs(pipeline: beam.Pipeline, job: PrepareJob, plan_here: bool) -> StageOutput:
    """The flow's start for CSV inputs: the files, or their byte ranges when planned in the launcher."""
    if plan_here:
        ranges = [r for f in job.inputs.files for r in plan_ranges(f, job.tuning.range_bytes)]
        return StageOutput.start(pipeline | "InputRanges" >> beam.Create(ranges))
    return StageOutput.start(pipeline | "Inputs" >> beam.Create(list(job.inputs.files)))
