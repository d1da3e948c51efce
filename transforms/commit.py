"""Commit stage: once every file is staged, publish the dataset so readers see the old one or the new one.

- Local disks: shards are staged with bucket names (`documents/bNNNNN-PPPP.parquet`) in a hidden sibling of
  the output (`.NAME.staging-RUN`). The commit names them `documents/part-NNNNN-of-MMMMM.parquet` (and
  `docarray/...docs`, `dead_letters/...parquet`) in (bucket, part) order, so names depend only on the data
  and options, writes manifest.json, README.md (the dataset card: write.dataset_card) and `_SUCCESS` there,
  and swaps that folder with the output in one atomic `renameat2(RENAME_EXCHANGE)` (a plain rename when
  there is no previous dataset); the previous dataset is then deleted.
- Object stores (no folder rename, and a copy costs the dataset's size): each run's files are written
  once, under the run's own version, and manifest.json is the one pointer to the current version:

      OUTPUT/manifest.json                  the current version and its files (paths relative to OUTPUT)
      OUTPUT/README.md                      the current version's dataset card, written just after the manifest
      OUTPUT/_SUCCESS                       written after the first manifest; never removed after that
      OUTPUT/versions/RUN/documents/bNNNNN-PPPP.parquet, docarray/..., dead_letters/...
      OUTPUT/versions/RUN/manifest.json     the same manifest (to roll back: copy it to OUTPUT/manifest.json)
      OUTPUT/versions/RUN/README.md         the same card (to roll back, copy it too)
      OUTPUT/_staging-RUN/                  the run's scratch (owner, spill files, progress), never published

  The write stage writes the shards straight into `versions/RUN/` under their bucket names; the manifest
  lists them in (bucket, part) order. The commit writes the version's manifest and card, then
  OUTPUT/manifest.json in one object write (the publish), then OUTPUT/README.md, `_SUCCESS` if missing,
  removes its scratch, and prunes (prune_versions). No byte of a shard is copied. A reader sees the
  previous manifest or the new one, and either names complete files; the previous version stays until the
  new manifest is in place, and afterwards while --keep-versions keeps it, so a reader that read the
  previous manifest just before can finish (or, when its files went, read_snapshot starts over on the new
  manifest).
  Without --overwrite on an output that had no manifest, the manifest is written only if still absent
  (storage.write_bytes exclusive: on GCS a generation precondition), so of two runs racing to a new
  output one is refused; stores without preconditions (the GCS emulator) let the later one win.
  A dataset published before versions existed (shards at OUTPUT/documents/...) is not kept: its shards
  are removed once the new manifest is in place.
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

from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA, DUPLICATE_SCHEMA
from transforms.stage import StageOutput, SumCounts
from transforms.output_folder import OutputTaken, check_replaceable
from transforms.split.report import manifest_section
from transforms.staging import COMMIT_MARKER, PROGRESS_FOLDER, remove_dead_stagings, remove_staging, shards_url, staged_runs
from transforms.storage import MANIFEST, SUCCESS, VERSIONS, filesystem, join_url, read_manifest, write_bytes
from transforms.uris import is_local
from transforms.write.dataset_card import README, dataset_card
from transforms.write.formats import DATASET_FOLDERS, DEAD_LETTERS, DUPLICATES, WRITERS, writers_for
from transforms.write.shard_writer import FileRecord, ShardWriter, write_shard


def reconcile(counts: dict) -> dict:
    """The two equations every run must satisfy, with both sides, and whether they hold."""
    rows_read = counts.get("rows_read", 0)
    row_dead_letters = counts.get("dead_letters", 0) - counts.get("documents_rejected", 0)
    accounted = counts.get("rows_documented", 0) + row_dead_letters + counts.get("sampled_out", 0)
    candidates = counts.get("candidate_documents", 0)
    written = (counts.get("documents_written", 0) + counts.get("duplicates_removed", 0)
               + counts.get("near_duplicates_removed", 0) + counts.get("documents_rejected", 0))
    return {
        "rows_read = rows_documented + (dead_letters - documents_rejected) + sampled_out": [rows_read, accounted],
        "candidate_documents = documents_written + duplicates_removed + near_duplicates_removed + documents_rejected":
            [candidates, written],
        "reconciled": rows_read == accounted and candidates == written,
    }


def final_names(files: list[FileRecord]) -> list[tuple[FileRecord, str]]:
    """Staged files -> (file, final relative path), numbered per folder and split in (bucket, part) order:
    `part-NNNNN-of-MMMMM`, or `SPLIT-NNNNN-of-MMMMM` for a split's shards."""
    named = []
    for folder in DATASET_FOLDERS:
        for split in sorted({f.split for f in files if f.folder == folder}):
            of_split = sorted((f for f in files if f.folder == folder and f.split == split),
                              key=lambda f: (f.bucket, f.part))
            for i, f in enumerate(of_split):
                suffix = posixpath.splitext(f.path)[1]
                named.append((f, f"{folder}/{split or 'part'}-{i:05d}-of-{len(of_split):05d}{suffix}"))
    return named


def version_names(files: list[FileRecord], version: str) -> list[tuple[FileRecord, str]]:
    """Files written to a version -> (file, path relative to the output), per folder and split in (bucket,
    part) order."""
    order = {folder: i for i, folder in enumerate(DATASET_FOLDERS)}
    return [(f, f"{version}/{f.folder}/{posixpath.basename(f.path)}")
            for f in sorted(files, key=lambda f: (order[f.folder], f.split, f.bucket, f.part))]


def publish(output: str, staging: str, files: list[FileRecord], counts: dict, manifest: dict) -> dict:
    """Publish the staged files as the dataset at `output`; returns the manifest written."""
    folders = {f.folder for f in files}
    shards = shards_url(output, manifest["run_id"])
    parquet = WRITERS["parquet"]
    if parquet.folder not in folders and parquet in writers_for(manifest["options"]["output"]["format"]):
        files = files + [_empty_shard(shards, parquet, DOCUMENT_SCHEMA)]
    for writer, schema in ((DEAD_LETTERS, DEAD_LETTER_SCHEMA), (DUPLICATES, DUPLICATE_SCHEMA)):
        if writer.folder not in folders:
            files = files + [_empty_shard(shards, writer, schema)]
    check_replaceable(output, manifest["options"]["output"]["overwrite"])  # again: another run may have committed
    if is_local(output):
        named = final_names(files)
        manifest = _completed(manifest, named, counts, staging)
        _publish_local(output, staging, named, _json(manifest), dataset_card(manifest))
        return manifest
    return _publish_object_store(output, staging, files, counts, manifest)


def _completed(manifest: dict, named: list[tuple[FileRecord, str]], counts: dict, staging: str, **version) -> dict:
    """The run's manifest with its shards (named: (file, path relative to the output)), counts,
    reconciliation, splits (with --split), commit time and, on object stores, its version keys."""
    split = manifest["options"].get("split")
    if split and split["fractions"]:
        version = dict(version, splits=manifest_section(split, counts, staging))
    shards = {folder: [] for folder in DATASET_FOLDERS}
    for f, name in named:
        shards[f.folder].append({"path": name, "rows": f.rows, "bytes": f.bytes, **({"split": f.split} if f.split else {})})
    return dict(manifest, **version, shards=shards, counts=counts, reconciliation=reconcile(counts),
                committed_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


def _json(manifest: dict) -> bytes:
    return json.dumps(manifest, indent=2).encode()


def _publish_local(output: str, staging: str, named: list, manifest: bytes, card: bytes) -> None:
    dataset = os.path.join(staging, "dataset")
    for f, name in named:
        os.makedirs(os.path.dirname(os.path.join(dataset, name)), exist_ok=True)
        os.replace(f.path, os.path.join(dataset, name))
    write_bytes(manifest, os.path.join(dataset, MANIFEST))
    write_bytes(card, os.path.join(dataset, README))
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


def _publish_object_store(output: str, staging: str, files: list[FileRecord], counts: dict, manifest: dict) -> dict:
    """Publish the files of the run's version by writing OUTPUT/manifest.json; returns that manifest."""
    options = manifest["options"]["output"]
    previous = read_manifest(output)
    version = join_url(VERSIONS, manifest["run_id"])
    earlier = []
    if previous is not None and "version" in previous:
        earlier = [previous["version"], *previous["previous_versions"]]
    manifest = _completed(manifest, version_names(files, version), counts, staging,
                          version=version, previous_versions=earlier[:options["keep_versions"]])
    card = dataset_card(manifest)
    write_bytes(_json(manifest), join_url(output, version, MANIFEST))
    write_bytes(card, join_url(output, version, README))
    try:
        write_bytes(_json(manifest), join_url(output, MANIFEST), exclusive=previous is None and not options["overwrite"])
    except FileExistsError:
        raise OutputTaken(f"--output {output!r} received a dataset from another run while this one ran. Re-run "
                          "with --overwrite to replace it, or give another folder.") from None
    write_bytes(card, join_url(output, README))  # after the publish: a refused run leaves the card as it was
    fs, path = filesystem(output)
    if not fs.exists(join_url(path, SUCCESS)):
        write_bytes(b"", join_url(output, SUCCESS))
    if previous is not None and "version" not in previous:  # published before versions: shards at the top
        fs.rm([join_url(path, shard["path"]) for listed in previous["shards"].values() for shard in listed])
    remove_staging(staging)
    prune_versions(output)
    return manifest


def prune_versions(output: str) -> list[str]:
    """Remove the versions at `output` (an object store) that its manifest neither names nor keeps and whose
    run has no staging folder (a run in progress keeps one from before its first file to after its
    publish); returns the versions removed. Dead runs' staging is removed first, so their versions go too.
    Versions are listed before the staging folders, and those before the manifest is read: a version whose
    run finished in between is then named by the manifest read, never taken for garbage."""
    remove_dead_stagings(output)
    fs, path = filesystem(join_url(output, VERSIONS))
    found = {posixpath.relpath(p, path).split("/")[0] for p in fs.find(path)}
    running = staged_runs(output)
    named = _named_versions(output)
    removed = sorted(v for v in found if join_url(VERSIONS, v) not in named and v not in running)
    for run_id in removed:
        try:
            fs.rm(join_url(path, run_id), recursive=True)
        except FileNotFoundError:  # another run pruning at the same time removed it first
            pass
    return removed


def discard_version(output: str, run_id: str) -> None:
    """Remove the version of a run whose commit was refused (object stores; local runs keep their shards in
    the staging folder), unless the manifest names it: a retried commit may find its own run published."""
    if is_local(output) or join_url(VERSIONS, run_id) in _named_versions(output):
        return
    fs, path = filesystem(shards_url(output, run_id))
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _named_versions(output: str) -> set[str]:
    """The versions (`versions/RUN`) the manifest at `output` names: the current one and those it keeps."""
    current = read_manifest(output) or {}
    return {current.get("version"), *current.get("previous_versions", [])}


def _empty_shard(shards: str, writer: type[ShardWriter], schema: pa.Schema) -> FileRecord:
    """A shard with no rows, so readers of a run that kept nothing still find the folder's schema."""
    return write_shard(writer, schema.empty_table(), join_url(shards, writer.folder, "empty" + writer.suffix))


def _mark_commit_started(staging: str) -> None:
    """For the launcher's progress line, when it is shown (its folder exists): the commit has started."""
    fs, folder = filesystem(join_url(staging, PROGRESS_FOLDER))
    if fs.exists(folder):
        write_bytes(b"{}", join_url(staging, PROGRESS_FOLDER, COMMIT_MARKER))


class _CommitFn(beam.DoFn):
    def __init__(self, output: str, staging: str, manifest: dict):
        self._output, self._staging, self._manifest = output, staging, manifest

    def process(self, _, files: list, counts: dict) -> Iterator[dict]:
        _mark_commit_started(self._staging)
        try:
            yield publish(self._output, self._staging, files, counts, self._manifest)
        except OutputTaken as taken:  # not a failure of the run: the launcher says so in one line
            discard_version(self._output, self._manifest["run_id"])
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
