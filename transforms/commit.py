"""Commit stage: once every file is staged, publish the dataset so readers see the old one or the new one.

Shards are staged with bucket names (`documents/bNNNNN-PPPP.parquet`); the commit names them
`documents/part-NNNNN-of-MMMMM.parquet` (and `docarray/...docs`, `dead_letters/...parquet`) in
(bucket, part) order, so names depend only on the data and options, then writes manifest.json and
`_SUCCESS` last.

- Local disks: the staging folder is a hidden sibling of the output (`.NAME.staging-RUN`). The complete
  dataset is assembled there and swapped with the output folder in one atomic `renameat2(RENAME_EXCHANGE)`
  (a plain rename when there is no previous dataset), then the previous dataset is deleted.
- Object stores (no folder rename): the staging folder is `OUTPUT/_staging-RUN/`, outside the folders
  readers glob. The commit removes `_SUCCESS`, copies the shards into place, deletes shards of the previous
  dataset that the new one does not have, writes the manifest, then `_SUCCESS`. Readers that honour
  `_SUCCESS` (as `pipelines.load_table` does) never see a mix.
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import ctypes
import posixpath
import datetime
import json
import os
from typing import Iterator

import apache_beam as beam
import pyarrow as pa

from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA
from transforms.stage import StageOutput, SumCounts
from transforms.output_folder import OutputTaken, check_replaceable
from transforms.storage import MANIFEST, SUCCESS, filesystem, join_url, write_bytes
from transforms.uris import is_local
from transforms.write.formats import DATASET_FOLDERS, DEAD_LETTERS, WRITERS, writers_for
from transforms.write.shard_writer import FileRecord, ShardWriter, write_shard


def reconcile(counts: dict) -> dict:
    """The two equations every run must satisfy, with both sides, and whether they hold."""
    rows_read = counts.get("rows_read", 0)
    row_dead_letters = counts.get("dead_letters", 0) - counts.get("documents_rejected", 0)
    accounted = counts.get("rows_documented", 0) + row_dead_letters + counts.get("sampled_out", 0)
    candidates = counts.get("candidate_documents", 0)
    written = (counts.get("documents_written", 0) + counts.get("duplicates_removed", 0)
               + counts.get("documents_rejected", 0))
    return {
        "rows_read = rows_documented + (dead_letters - documents_rejected) + sampled_out": [rows_read, accounted],
        "candidate_documents = documents_written + duplicates_removed + documents_rejected": [candidates, written],
        "reconciled": rows_read == accounted and candidates == written,
    }


def final_names(files: list[FileRecord]) -> list[tuple[FileRecord, str]]:
    """Staged files -> (file, final relative path), numbered per folder in (bucket, part) order."""
    named = []
    for folder in DATASET_FOLDERS:
        of_folder = sorted((f for f in files if f.folder == folder), key=lambda f: (f.bucket, f.part))
        for i, f in enumerate(of_folder):
            suffix = posixpath.splitext(f.path)[1]
            named.append((f, f"{folder}/part-{i:05d}-of-{len(of_folder):05d}{suffix}"))
    return named


def publish(output: str, staging: str, files: list[FileRecord], counts: dict, manifest: dict) -> dict:
    """Publish the staged files as the dataset at `output`; returns the manifest written."""
    folders = {f.folder for f in files}
    parquet = WRITERS["parquet"]
    if parquet.folder not in folders and parquet in writers_for(manifest["options"]["output"]["format"]):
        files = files + [_empty_shard(staging, parquet, DOCUMENT_SCHEMA)]
    if DEAD_LETTERS.folder not in folders:
        files = files + [_empty_shard(staging, DEAD_LETTERS, DEAD_LETTER_SCHEMA)]
    named = final_names(files)
    shards = {folder: [] for folder in DATASET_FOLDERS}
    for f, name in named:
        shards[f.folder].append({"path": name, "rows": f.rows, "bytes": f.bytes})
    manifest = dict(manifest, shards=shards, counts=counts, reconciliation=reconcile(counts),
                    committed_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    body = json.dumps(manifest, indent=2).encode()
    check_replaceable(output, manifest["options"]["output"]["overwrite"])  # again: another run may have committed
    if is_local(output):
        _publish_local(output, staging, named, body)
    else:
        _publish_object_store(output, staging, named, body)
    return manifest


def _publish_local(output: str, staging: str, named: list, manifest: bytes) -> None:
    dataset = os.path.join(staging, "dataset")
    for f, name in named:
        os.makedirs(os.path.dirname(os.path.join(dataset, name)), exist_ok=True)
        os.replace(f.path, os.path.join(dataset, name))
    write_bytes(manifest, os.path.join(dataset, MANIFEST))
    write_bytes(b"", os.path.join(dataset, SUCCESS))
    if os.path.isdir(output) and os.listdir(output):
        _exchange(dataset, output)  # a dataset of ours (checked just before): the previous one is now at `dataset`
    else:
        _move_into_place(dataset, output)
    fs, path = filesystem(staging)
    fs.rm(path, recursive=True)


_RENAME_NOREPLACE, _RENAME_EXCHANGE, _AT_FDCWD = 1, 2, -100
OUTCOME = "outcome.json"  # in the staging folder: why a finished run published nothing


def unpublished_reason(staging: str) -> str:
    """After a run: why its commit published nothing ('' when it published)."""
    fs, path = filesystem(join_url(staging, OUTCOME))
    if not fs.exists(path):
        return ""
    with fs.open(path, "rb") as handle:
        return json.load(handle)["output_taken"]


def _renameat2(a: str, b: str, flags: int) -> bool:
    """Linux renameat2(a, b, flags) -> True when done; False where the call is missing; OSError when it fails."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    if libc.renameat2(_AT_FDCWD, a.encode(), _AT_FDCWD, b.encode(), flags) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), b)
    return True


def _move_into_place(dataset: str, output: str) -> None:
    """Rename the staged dataset to `output`, which holds no dataset: atomically refused (OutputTaken) when
    another run's dataset got there first. An empty folder the user made is replaced."""
    os.makedirs(os.path.dirname(output.rstrip("/")) or ".", exist_ok=True)
    try:
        if os.path.isdir(output):
            os.rmdir(output)  # only an empty folder (check_replaceable let nothing else through)
        if not _renameat2(dataset, output, _RENAME_NOREPLACE):
            os.rename(dataset, output)
    except OSError as error:  # EEXIST / ENOTEMPTY: another run published first
        raise OutputTaken(f"--output {output!r} received a dataset from another run while this one ran "
                          f"({error.strerror}); nothing of this run was published. Re-run with --overwrite to "
                          "replace it, or give another folder.") from None


def _exchange(a: str, b: str) -> None:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); elsewhere, two renames."""
    if _renameat2(a, b, _RENAME_EXCHANGE):
        return
    aside = a + ".previous"
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def _publish_object_store(output: str, staging: str, named: list, manifest: bytes) -> None:
    fs, out_path = filesystem(output)
    success = join_url(out_path, SUCCESS)
    if fs.exists(success):
        fs.rm(success)
    new_paths = set()
    for f, name in named:
        target = join_url(out_path, name)
        fs.copy(filesystem(f.path)[1], target)  # no server-side move is assumed
        new_paths.add(target)
    for name in DATASET_FOLDERS:
        folder = join_url(out_path, name)
        old = [p for p in (fs.find(folder) if fs.exists(folder) else []) if p.rstrip("/") not in new_paths]
        if old:
            fs.rm(old)
    write_bytes(manifest, join_url(output, MANIFEST))
    write_bytes(b"", join_url(output, SUCCESS))
    fs.rm(filesystem(staging)[1], recursive=True)


def _empty_shard(staging: str, writer: type[ShardWriter], schema: pa.Schema) -> FileRecord:
    """A shard with no rows, so readers of a run that kept nothing still find the folder's schema."""
    return write_shard(writer, schema.empty_table(), join_url(staging, writer.folder, "empty" + writer.suffix))


class _CommitFn(beam.DoFn):
    def __init__(self, output: str, staging: str, manifest: dict):
        self._output, self._staging, self._manifest = output, staging, manifest

    def process(self, _, files: list, counts: dict) -> Iterator[dict]:
        try:
            yield publish(self._output, self._staging, files, counts, self._manifest)
        except OutputTaken as taken:  # not a failure of the run: the launcher says so in one line
            reason = f"{taken} (Another run wrote there while this one ran; nothing of this run was published.)"
            write_bytes(json.dumps({"output_taken": reason}).encode(), join_url(self._staging, OUTCOME))


class CommitOutput(beam.PTransform):
    """Stage: main = FileRecords of every staged file; counts = all of the run's -> main = the one
    manifest written, once the dataset is published."""

    def __init__(self, output: str, staging: str, manifest: dict):
        super().__init__()
        self._output, self._staging, self._manifest = output, staging, manifest

    def expand(self, flow: StageOutput) -> StageOutput:
        counts = (flow.counts
                  | "AllCounts" >> beam.Flatten(pipeline=flow.main.pipeline)
                  | "SumCounts" >> beam.CombineGlobally(SumCounts()))
        manifest = (
            flow.main.pipeline
            | "Start" >> beam.Create([None])
            | "Publish" >> beam.ParDo(_CommitFn(self._output, self._staging, self._manifest),
                                      beam.pvalue.AsList(flow.main), beam.pvalue.AsSingleton(counts))
        )
        return StageOutput(manifest, flow.dead_letters, ())
