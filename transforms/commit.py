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
import ctypes
import datetime
import json
import os
from typing import Iterator

import apache_beam as beam
import pyarrow as pa

from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA
from transforms.storage import MANIFEST, SUCCESS, filesystem, is_local, join_url, write_bytes, write_parquet

KINDS = {"documents": ".parquet", "docarray": ".docs", "dead_letters": ".parquet"}


def staging_url(output: str, run_id: str) -> str:
    """Where a run stages its files: a hidden sibling on local disks, a prefix inside the output elsewhere."""
    if is_local(output):
        parent, name = os.path.split(output.rstrip("/"))
        return os.path.join(parent, f".{name}.staging-{run_id}")
    return join_url(output, f"_staging-{run_id}")


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


def final_names(files: list[dict]) -> list[tuple[dict, str]]:
    """Staged file descriptors -> (descriptor, final relative path), numbered per kind in (bucket, part) order."""
    named = []
    for kind, suffix in KINDS.items():
        of_kind = sorted((f for f in files if f["kind"] == kind), key=lambda f: (f["bucket"], f["part"]))
        for i, f in enumerate(of_kind):
            named.append((f, f"{kind}/part-{i:05d}-of-{len(of_kind):05d}{suffix}"))
    return named


def publish(output: str, staging: str, files: list[dict], counts: dict, manifest: dict) -> dict:
    """Publish the staged files as the dataset at `output`; returns the manifest written."""
    kinds = {f["kind"] for f in files}
    if "documents" not in kinds and manifest["options"]["output"]["format"] in ("parquet", "both"):
        files = files + [_empty_shard(staging, "documents", DOCUMENT_SCHEMA)]
    if "dead_letters" not in kinds:
        files = files + [_empty_shard(staging, "dead_letters", DEAD_LETTER_SCHEMA)]
    named = final_names(files)
    shards = {kind: [] for kind in KINDS}
    for f, name in named:
        shards[f["kind"]].append({"path": name, "rows": f["rows"], "bytes": f["bytes"]})
    manifest = dict(manifest, shards=shards, counts=counts, reconciliation=reconcile(counts),
                    committed_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    body = json.dumps(manifest, indent=2).encode()
    if is_local(output):
        _publish_local(output, staging, named, body)
    else:
        _publish_object_store(output, staging, named, body)
    return manifest


def _publish_local(output: str, staging: str, named: list, manifest: bytes) -> None:
    dataset = os.path.join(staging, "dataset")
    for f, name in named:
        os.makedirs(os.path.dirname(os.path.join(dataset, name)), exist_ok=True)
        os.replace(f["path"], os.path.join(dataset, name))
    write_bytes(manifest, os.path.join(dataset, MANIFEST))
    write_bytes(b"", os.path.join(dataset, SUCCESS))
    if os.path.exists(output):
        _exchange(dataset, output)  # the previous dataset is now at `dataset`
    else:
        os.makedirs(os.path.dirname(output.rstrip("/")) or ".", exist_ok=True)
        os.rename(dataset, output)
    fs, path = filesystem(staging)
    fs.rm(path, recursive=True)


def _exchange(a: str, b: str) -> None:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); elsewhere, two renames."""
    libc = ctypes.CDLL(None, use_errno=True)
    if hasattr(libc, "renameat2"):
        at_fdcwd, rename_exchange = -100, 2
        if libc.renameat2(at_fdcwd, a.encode(), at_fdcwd, b.encode(), rename_exchange) == 0:
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
        fs.copy(filesystem(f["path"])[1], target)  # no server-side move is assumed
        new_paths.add(target)
    for kind in KINDS:
        folder = join_url(out_path, kind)
        old = [p for p in (fs.find(folder) if fs.exists(folder) else []) if p.rstrip("/") not in new_paths]
        if old:
            fs.rm(old)
    write_bytes(manifest, join_url(output, MANIFEST))
    write_bytes(b"", join_url(output, SUCCESS))
    fs.rm(filesystem(staging)[1], recursive=True)


def _empty_shard(staging: str, kind: str, schema: pa.Schema) -> dict:
    path = join_url(staging, kind, "empty.parquet")
    return dict(kind=kind, bucket=0, part=0, path=path, rows=0, bytes=write_parquet(schema.empty_table(), path))


class _CommitFn(beam.DoFn):
    def __init__(self, output: str, staging: str, manifest: dict):
        self._output, self._staging, self._manifest = output, staging, manifest

    def process(self, _, files: list, counts: dict) -> Iterator[dict]:
        yield publish(self._output, self._staging, files, counts, self._manifest)


class CommitOutput(beam.PTransform):
    """(PCollection[file descriptor], PCollection[counts dict]) -> PCollection with the one manifest written."""

    def __init__(self, output: str, staging: str, manifest: dict):
        super().__init__()
        self._output, self._staging, self._manifest = output, staging, manifest

    def expand(self, files_and_counts):
        files, counts = files_and_counts
        return (
            files.pipeline
            | "Start" >> beam.Create([None])
            | "Publish" >> beam.ParDo(_CommitFn(self._output, self._staging, self._manifest),
                                      beam.pvalue.AsList(files), beam.pvalue.AsSingleton(counts))
        )
