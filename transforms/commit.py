"""Commit stage: once every file is staged, give shards their final names, write manifest.json, then _SUCCESS.

Files are staged under `<output>/_staging-<run_id>/` (outside the folders readers glob). The commit moves
them to `documents/part-NNNNN-of-MMMMM.parquet`, `docarray/part-....docs` and
`dead_letters/part-....parquet`, in (bucket, part) order, so names depend only on the data and options.
"""
import datetime
import json
import posixpath
from typing import Iterator

import apache_beam as beam
import pyarrow as pa

from schemas.documents import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA
from transforms.storage import filesystem, join_url, write_bytes, write_parquet

KINDS = {"documents": ".parquet", "docarray": ".docs", "dead_letters": ".parquet"}
SUCCESS = "_SUCCESS"
MANIFEST = "manifest.json"


def reconcile(counts: dict) -> dict:
    """The two equations every run must satisfy, with both sides, and whether they hold."""
    rows_read = counts.get("rows_read", 0)
    accounted = counts.get("rows_documented", 0) + counts.get("dead_letters", 0) + counts.get("sampled_out", 0)
    candidates = counts.get("candidate_documents", 0)
    written = counts.get("documents_written", 0) + counts.get("duplicates_removed", 0)
    return {
        "rows_read = rows_documented + dead_letters + sampled_out": [rows_read, accounted],
        "candidate_documents = documents_written + duplicates_removed": [candidates, written],
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
    """Move staged files into place, write the manifest and then _SUCCESS; returns the manifest written."""
    fs, out_path = filesystem(output)
    kinds = {f["kind"] for f in files}
    if "documents" not in kinds and manifest["options"]["output"]["format"] in ("parquet", "both"):
        files = files + [_empty_shard(staging, "documents", DOCUMENT_SCHEMA)]
    if "dead_letters" not in kinds:
        files = files + [_empty_shard(staging, "dead_letters", DEAD_LETTER_SCHEMA)]
    for marker in (SUCCESS, MANIFEST):
        if fs.exists(join_url(out_path, marker)):
            fs.rm(join_url(out_path, marker))
    for kind in KINDS:
        if fs.exists(join_url(out_path, kind)):
            fs.rm(join_url(out_path, kind), recursive=True)
    shards = {kind: [] for kind in KINDS}
    for f, name in final_names(files):
        _move(fs, filesystem(f["path"])[1], join_url(out_path, name))
        shards[f["kind"]].append({"path": name, "rows": f["rows"], "bytes": f["bytes"]})
    manifest = dict(manifest, shards=shards, counts=counts, reconciliation=reconcile(counts),
                    committed_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write_bytes(json.dumps(manifest, indent=2, sort_keys=False).encode(), join_url(output, MANIFEST))
    write_bytes(b"", join_url(output, SUCCESS))
    if fs.exists(filesystem(staging)[1]):
        fs.rm(filesystem(staging)[1], recursive=True)
    return manifest


def _empty_shard(staging: str, kind: str, schema: pa.Schema) -> dict:
    path = join_url(staging, kind, "empty.parquet")
    return dict(kind=kind, bucket=0, part=0, path=path, rows=0, bytes=write_parquet(schema.empty_table(), path))


def _move(fs, source: str, target: str) -> None:
    """Rename on local disks; copy then delete on object stores (no server-side move is assumed)."""
    fs.makedirs(posixpath.dirname(target), exist_ok=True)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        fs.mv(source, target)
    else:
        fs.copy(source, target)
        fs.rm(source)


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
