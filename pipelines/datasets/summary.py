"""`finetune-etl summary URL [--json] [--top N]`: what a prepared dataset holds, and whether it adds up.

Reads the manifest, the Parquet footers and a few small columns (never `blob`, `point_cloud` or the
chunks' blobs). `summarize(url, top)` returns the dict that `--json` prints; its keys:

    url, run_id, tool, committed_at, layout, clip, modalities    from the manifest
    documents     {total, by_modality: {modality: n}, pairs: {"text+image": n}}  (pairs: two-chunk docs)
    labels        null, or {count, per_label: {min, median, max}, largest: [{label, documents}]}
    scores        null, or {count, min, median, max, histogram: [{low, high, documents}]}  (10 bins on [0, 1])
    images        null, or {count, width: {min, median, max}, height: {min, median, max}, mime_types: {type: n}}
    meshes        null, or {count, points_per_cloud}  (documents and chunks; points: the run's setting,
                  null when the run did not sample point clouds)
    dead_letters  {total, by_stage: {stage: n}, top: [{stage, reason_class, count,
                   example: {source_file, source_row, reason}}]}  (top: the N largest (stage, reason_class))
    inputs        [{url, size, delimiter, encoding, header, fields}]
    options       the manifest's options, as the run used them
    shards        {documents|docarray|dead_letters: {files, rows, bytes, rows_in_files}}
                  (rows_in_files: from the Parquet footers; null for docarray shards)
    counts        the manifest's counts
    reconciliation {equations: [{equation, left, right, holds}], reconciled}  (the manifest's verdict)
    checks        [{check, expected, found, holds}]  (the files agree with the manifest)

Images and meshes count the documents and the chunks of two-chunk documents. Medians are floats.
"""
import argparse
import json
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.datasets.dataset_errors import DATASET_ERRORS, dataset_error, fail
from pipelines.datasets.load import load_table, read_parquet_shards, read_snapshot

FLAT_COLUMNS = ["label", "score", "modality", "mime_type", "width", "height"]
CHUNK_FIELDS = ["modality", "mime_type", "width", "height"]
DEAD_LETTER_COLUMNS = ["source_file", "source_row", "stage", "reason_class", "reason"]
SCORE_BINS = 10


def _documents(url: str, manifest: dict) -> tuple[pa.Table, Optional[int]]:
    """(documents with FLAT_COLUMNS and chunks of CHUNK_FIELDS, rows in the Parquet footers or None)."""
    shards = manifest["shards"]["documents"]
    if shards:
        tables = read_parquet_shards(url, shards, FLAT_COLUMNS + [f"chunks.list.element.{f}" for f in CHUNK_FIELDS])
        return pa.concat_tables(tables, promote_options="permissive"), sum(t.num_rows for t in tables)
    return load_table(url, columns=FLAT_COLUMNS + ["chunks"]), None  # docarray only: the whole documents


def _stats(values: pa.Array) -> Optional[dict]:
    values = np.asarray(values.drop_null(), dtype=np.float64)
    if not values.size:
        return None
    return {"min": _number(values.min()), "median": float(np.median(values)), "max": _number(values.max())}


def _number(value: float):
    return int(value) if float(value).is_integer() else float(value)


def _chunks(documents: pa.Table) -> pa.StructArray:
    """The chunks of every document, flattened (n_chunks,)."""
    return pc.list_flatten(documents.column("chunks").combine_chunks())


def _tally(values) -> dict:
    """Values -> {value: how many}, sorted by value (nulls left out)."""
    counts = pc.value_counts(pc.drop_null(values))
    if not len(counts):
        return {}
    return dict(sorted(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())))


def documents_summary(documents: pa.Table) -> dict:
    chunks = documents.column("chunks").combine_chunks()
    if len(chunks) and chunks.null_count < len(chunks):
        chunks = chunks.filter(pc.is_valid(chunks))
        offsets = np.concatenate([[0], np.cumsum(pc.list_value_length(chunks))]).astype(np.int32)
        kinds = pa.ListArray.from_arrays(pa.array(offsets), pc.list_flatten(chunks).field("modality"))
        pairs = _tally(pc.binary_join(kinds, "+"))
    else:
        pairs = {}
    return {"total": documents.num_rows, "by_modality": _tally(documents.column("modality").combine_chunks()),
            "pairs": pairs}


def labels_summary(documents: pa.Table, top: int) -> Optional[dict]:
    counts = pc.value_counts(documents.column("label").combine_chunks().drop_null())
    if not len(counts):
        return None
    labels, sizes = counts.field("values").to_pylist(), counts.field("counts").to_numpy()
    order = sorted(range(len(labels)), key=lambda i: (-sizes[i], labels[i]))[:top]
    return {"count": len(labels), "per_label": _stats(pa.array(sizes)),
            "largest": [{"label": labels[i], "documents": int(sizes[i])} for i in order]}


def scores_summary(documents: pa.Table) -> Optional[dict]:
    scores = np.asarray(documents.column("score").drop_null(), dtype=np.float64)
    if not scores.size:
        return None
    counts, edges = np.histogram(scores, bins=SCORE_BINS, range=(0.0, 1.0))
    return dict(count=int(scores.size), **_stats(pa.array(scores)),
                histogram=[{"low": round(float(lo), 2), "high": round(float(hi), 2), "documents": int(n)}
                           for lo, hi, n in zip(edges[:-1], edges[1:], counts)])


def _media(documents: pa.Table, kind: str) -> dict:
    """CHUNK_FIELDS of the documents and chunks of one modality, as arrays."""
    own = pc.equal(documents.column("modality"), kind)
    chunks = _chunks(documents)
    of_kind = chunks.filter(pc.equal(chunks.field("modality"), kind)) if len(chunks) else None
    columns = {}
    for field in CHUNK_FIELDS:
        values = documents.column(field).filter(own).combine_chunks()
        if of_kind is not None and len(of_kind):
            values = pa.concat_arrays([values, of_kind.field(field).cast(values.type)])
        columns[field] = values
    return columns


def images_summary(documents: pa.Table) -> Optional[dict]:
    images = _media(documents, "image")
    if not len(images["modality"]):
        return None
    return {"count": len(images["modality"]), "width": _stats(images["width"]), "height": _stats(images["height"]),
            "mime_types": _tally(images["mime_type"])}


def meshes_summary(documents: pa.Table, options: dict) -> Optional[dict]:
    meshes = len(_media(documents, "mesh")["modality"])
    if not meshes:
        return None
    sampled = options.get("media", {}).get("create_point_clouds", True)
    return {"count": meshes, "points_per_cloud": options["media"]["point_cloud_size"] if sampled else None}


def dead_letters_summary(dead: Optional[pa.Table], top: int) -> dict:
    if dead is None or not dead.num_rows:
        return {"total": 0, "by_stage": {}, "top": []}
    dead = dead.sort_by([("source_file", "ascending"), ("source_row", "ascending")])
    groups = dead.group_by(["stage", "reason_class"], use_threads=False).aggregate(  # ordered: "first" is the earliest row
        [("stage", "count"), ("source_file", "first"), ("source_row", "first"), ("reason", "first")]).to_pylist()
    ranked = sorted(groups, key=lambda g: (-g["stage_count"], g["stage"], g["reason_class"]))[:top]
    return {"total": dead.num_rows, "by_stage": _tally(dead.column("stage").combine_chunks()),
            "top": [{"stage": g["stage"], "reason_class": g["reason_class"], "count": g["stage_count"],
                     "example": {k: g[f"{k}_first"] for k in ("source_file", "source_row", "reason")}}
                    for g in ranked]}


def shards_summary(manifest: dict, rows_in_files: dict) -> dict:
    return {kind: {"files": len(shards), "rows": sum(s["rows"] for s in shards), "bytes": sum(s["bytes"] for s in shards),
                   "rows_in_files": rows_in_files.get(kind)}
            for kind, shards in manifest["shards"].items()}


def reconciliation_summary(manifest: dict) -> dict:
    equations = [{"equation": name, "left": pair[0], "right": pair[1], "holds": pair[0] == pair[1]}
                 for name, pair in manifest["reconciliation"].items() if name != "reconciled"]
    return {"equations": equations, "reconciled": bool(manifest["reconciliation"].get("reconciled"))}


def checks(manifest: dict, documents: int, dead_letters: int, shards: dict) -> list[dict]:
    """The files against the manifest: document and dead-letter rows, and every Parquet footer."""
    counts = manifest["counts"]
    found = [("documents in the files = counts.documents_written", counts.get("documents_written", 0), documents),
             ("dead letters in the files = counts.dead_letters", counts.get("dead_letters", 0), dead_letters)]
    for kind, shard in shards.items():
        if shard["rows_in_files"] is not None:
            found.append((f"{kind} rows in the Parquet footers = the manifest's shard rows", shard["rows"], shard["rows_in_files"]))
    return [{"check": name, "expected": expected, "found": got, "holds": expected == got} for name, expected, got in found]


def _read(url: str, manifest: dict, top: int) -> dict:
    documents, document_rows = _documents(url, manifest)
    dead_tables = read_parquet_shards(url, manifest["shards"]["dead_letters"], DEAD_LETTER_COLUMNS)
    dead = pa.concat_tables(dead_tables) if dead_tables else None
    dead_rows = sum(t.num_rows for t in dead_tables)
    shards = shards_summary(manifest, {"documents": document_rows, "dead_letters": dead_rows})
    dead_summary = dead_letters_summary(dead, top)
    inputs = [{k: i.get(k) for k in ("url", "size", "delimiter", "encoding", "header", "fields")}
              for i in manifest.get("inputs", [])]
    return {
        "url": url, **{k: manifest.get(k) for k in ("run_id", "tool", "committed_at", "layout", "clip", "modalities")},
        "documents": documents_summary(documents), "labels": labels_summary(documents, top),
        "scores": scores_summary(documents), "images": images_summary(documents),
        "meshes": meshes_summary(documents, manifest["options"]), "dead_letters": dead_summary,
        "inputs": inputs, "options": manifest["options"], "shards": shards, "counts": manifest["counts"],
        "reconciliation": reconciliation_summary(manifest),
        "checks": checks(manifest, documents.num_rows, dead_summary["total"], shards),
    }


def summarize(url: str, top: int = 10) -> dict:
    """A dataset URL -> the summary dict (keys in the module docstring), read from one committed run.

    FileNotFoundError when no complete dataset is there; DatasetChanging when runs keep committing meanwhile."""
    return read_snapshot(url, lambda manifest: _read(url, manifest, top))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="finetune-etl summary", description="What a prepared dataset holds, and whether its counts add up.")
    p.add_argument("url", help="the dataset folder (local path or fsspec URL such as gs://bucket/dataset)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (keys: see pipelines/datasets/summary.py)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="largest labels and dead-letter reasons shown (default: %(default)s)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.top < 1:
        return fail(f"--top {args.top} must be at least 1.")
    try:
        summary = summarize(args.url, args.top)
    except DATASET_ERRORS as error:
        return dataset_error(error)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        from pipelines.datasets.summary_render import render

        render(summary)
    return 0
