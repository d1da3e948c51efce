"""`finetune-etl summary URL [--json] [--top N]`: what a prepared dataset holds, and whether it adds up.

Reads the manifest, the Parquet footers and a few small columns (never `blob`, `point_cloud` or the
chunks' blobs), with pyarrow and numpy alone: importing docarray or pandas (which pyarrow imports as soon
as it converts a Python value, builds a numpy array or groups a table) took longer than reading a million
documents. Splits and duplicates are read by summary_groups. `summarize(url, top)` returns the dict that
`--json` prints; its keys:

    url, run_id, tool, committed_at, layout, clip, modalities    from the manifest
    documents     {total, by_modality: {modality: n}, pairs: {"text+image": n}}  (pairs: two-chunk docs)
    labels        null, or {count, per_label: {min, median, max}, largest: [{label, documents}]}
    scores        null, or {count, min, median, max, histogram: [{low, high, documents}]}  (10 bins on [0, 1])
    images        null, or {count, width: {min, median, max}, height: {min, median, max}, mime_types: {type: n}}
    meshes        null, or {count, points_per_cloud}  (documents and chunks; points: the run's setting,
                  null when the run did not sample point clouds)
    splits        null, or (with --split) {per_split: {name: {documents, labels}}, labels_in_two_splits,
                  content_in_two_splits, duplicate_groups_in_two_splits, labels_kept_whole, largest_groups}
                  (read from the files: texts and URIs of documents and chunks, near-duplicate clusters
                  (`duplicate_group`; null when the files have no such column); the checks expect 0 of each)
    duplicates    null (no duplicates folder: written before duplicates were recorded), or {exact_removed,
                  near_clusters, near_found, near_removed, largest_clusters: [{kept_id, kind, size,
                  similarity: {min, max}, examples: [{id, removed, text, uri}]}]}  (read from the files;
                  near_found: the documents of near clusters, kept ones included; up to 5 clusters)
    dead_letters  {total, by_stage: {stage: n}, top: [{stage, reason_class, count,
                   example: {source_file, source_row, reason}}]}  (top: the N largest (stage, reason_class))
    inputs        [{url, size, delimiter, encoding, header, fields}]
    options       the manifest's options, as the run used them
    shards        {documents|docarray|dead_letters|duplicates: {files, rows, bytes, rows_in_files}}
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
from pipelines.datasets.arrow_counts import count_equal, first_valid, numbers, stats, tally, text_scalar, value_counts
from pipelines.datasets.load import load_table, read_parquet_shards, read_snapshot
from pipelines.datasets.summary_groups import duplicates_summary, group_checks, read_duplicates, splits_summary
from schemas.documents import CHUNK_TYPE, DOCUMENT_SCHEMA
from schemas.modalities import PAIR

FLAT_COLUMNS = ["label", "score", "modality", "mime_type", "width", "height"]
MEDIA_FIELDS = ["mime_type", "width", "height"]
CHUNK_FIELDS = ["modality", *MEDIA_FIELDS]
CHUNKS = pa.field("chunks", pa.list_(pa.struct([CHUNK_TYPE.field(f) for f in CHUNK_FIELDS])))
DEAD_LETTER_COLUMNS = ["source_file", "source_row", "stage", "reason_class", "reason"]
SCORE_BINS = 10


def _documents(url: str, manifest: dict) -> tuple[pa.Table, Optional[int]]:
    """(documents with FLAT_COLUMNS and chunks of CHUNK_FIELDS, rows in the Parquet footers or None).

    Parquet is read in up to two passes: label, score and modality; then the chunks only when there are
    two-chunk documents (modality pair), and MEDIA_FIELDS only when there are image documents. Columns not
    read are left null: only pairs have chunks, and the summary uses the media fields of images alone."""
    shards = manifest["shards"]["documents"]
    if not shards:
        return load_table(url, columns=FLAT_COLUMNS + ["chunks"]), None  # docarray only: the whole documents
    tables = read_parquet_shards(url, shards, ["label", "score", "modality"])
    documents = pa.concat_tables(tables, promote_options="permissive")
    modality = documents.column("modality")
    media = MEDIA_FIELDS if count_equal(modality, "image") else []
    chunks = [f"chunks.list.element.{f}" for f in CHUNK_FIELDS] if count_equal(modality, PAIR) else []
    if media or chunks:
        extra = pa.concat_tables(read_parquet_shards(url, shards, media + chunks), promote_options="permissive")
        for name in extra.column_names:
            documents = documents.append_column(name, extra.column(name))
    for field in [DOCUMENT_SCHEMA.field(f) for f in MEDIA_FIELDS] + [CHUNKS]:
        if field.name not in documents.column_names:
            documents = documents.append_column(field, pa.nulls(documents.num_rows, field.type))
    return documents, sum(t.num_rows for t in tables)


def _chunks(documents: pa.Table) -> pa.ChunkedArray:
    """The chunks of every document, flattened: one struct per chunk (n_chunks,)."""
    return pc.list_flatten(documents.column("chunks"))


def _kinds(chunks: pa.ChunkedArray) -> pa.ChunkedArray:
    """The chunks column -> per document, its chunks' modalities joined by "+" ("text+image"; null without chunks)."""
    modalities = [pa.ListArray.from_arrays(c.offsets, c.values.field("modality"), mask=c.is_null())
                  for c in chunks.chunks]
    return pc.binary_join(pa.chunked_array(modalities, pa.list_(pa.string())), text_scalar("+"))


def documents_summary(documents: pa.Table) -> dict:
    return {"total": documents.num_rows, "by_modality": tally(documents.column("modality")),
            "pairs": tally(_kinds(documents.column("chunks")))}


def labels_summary(documents: pa.Table, top: int) -> Optional[dict]:
    counts = value_counts(documents.column("label"))
    if not counts.num_rows:
        return None
    order = [("count", "descending"), ("value", "ascending")]
    largest = counts.take(pc.select_k_unstable(counts, top, sort_keys=order))
    return {"count": counts.num_rows, "per_label": stats(numbers(counts.column("count"))),
            "largest": [{"label": label, "documents": n}
                        for label, n in zip(largest.column("value").to_pylist(), largest.column("count").to_pylist())]}


def scores_summary(documents: pa.Table) -> Optional[dict]:
    scores = numbers(documents.column("score"))
    if not scores.size:
        return None
    counts, edges = np.histogram(scores, bins=SCORE_BINS, range=(0.0, 1.0))
    return dict(count=int(scores.size), **stats(scores),
                histogram=[{"low": round(float(lo), 2), "high": round(float(hi), 2), "documents": int(n)}
                           for lo, hi, n in zip(edges[:-1], edges[1:], counts)])


def _media(documents: pa.Table, kind: str) -> dict[str, pa.ChunkedArray]:
    """CHUNK_FIELDS of the documents and chunks of one modality -> {field: values (documents', then chunks')}."""
    chunks = _chunks(documents)
    own = pc.equal(documents.column("modality"), text_scalar(kind))
    of_kind = pc.equal(pc.struct_field(chunks, "modality"), text_scalar(kind))
    columns = {}
    for field in CHUNK_FIELDS:
        values = documents.column(field).filter(own)
        theirs = pc.struct_field(chunks, field).filter(of_kind).cast(values.type)
        columns[field] = pa.chunked_array(values.chunks + theirs.chunks, values.type)
    return columns


def images_summary(documents: pa.Table) -> Optional[dict]:
    images = _media(documents, "image")
    if not len(images["modality"]):
        return None
    return {"count": len(images["modality"]), "width": stats(numbers(images["width"])),
            "height": stats(numbers(images["height"])),
            "mime_types": tally(images["mime_type"])}


def meshes_summary(documents: pa.Table, options: dict) -> Optional[dict]:
    chunk_modality = pc.struct_field(_chunks(documents), "modality")
    meshes = count_equal(documents.column("modality"), "mesh") + count_equal(chunk_modality, "mesh")
    if not meshes:
        return None
    sampled = options.get("media", {}).get("create_point_clouds", True)
    return {"count": meshes, "points_per_cloud": options["media"]["point_cloud_size"] if sampled else None}


def dead_letters_summary(dead: Optional[pa.Table], top: int) -> dict:
    """Dead letters -> {total, by_stage, top}; each (stage, reason_class) with an example: the first non-null
    source_file, source_row and reason of its rows in file and row order. (Grouped with filters:
    Table.group_by imports pyarrow.dataset, and with it pandas, which took a second.)"""
    if dead is None or not dead.num_rows:
        return {"total": 0, "by_stage": {}, "top": []}
    dead = dead.sort_by([("source_file", "ascending"), ("source_row", "ascending")])
    by_stage, groups = tally(dead.column("stage")), []
    for stage in by_stage:
        of_stage = dead.filter(pc.equal(dead.column("stage"), text_scalar(stage)))
        for reason_class, count in tally(of_stage.column("reason_class")).items():
            rows = of_stage.filter(pc.equal(of_stage.column("reason_class"), text_scalar(reason_class)))
            groups.append({"stage": stage, "reason_class": reason_class, "count": count,
                           "example": {k: first_valid(rows.column(k)) for k in ("source_file", "source_row", "reason")}})
    ranked = sorted(groups, key=lambda g: (-g["count"], g["stage"], g["reason_class"]))[:top]
    return {"total": dead.num_rows, "by_stage": by_stage, "top": ranked}


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
    duplicate_rows = read_duplicates(url, manifest)
    rows_in_files = {"documents": document_rows, "dead_letters": dead_rows}
    if duplicate_rows is not None:
        rows_in_files["duplicates"] = duplicate_rows.num_rows
    shards = shards_summary(manifest, rows_in_files)
    dead_summary = dead_letters_summary(dead, top)
    inputs = [{k: i.get(k) for k in ("url", "size", "delimiter", "encoding", "header", "fields")}
              for i in manifest.get("inputs", [])]
    split, duplicates = splits_summary(url, manifest), duplicates_summary(duplicate_rows)
    return {
        "url": url, **{k: manifest.get(k) for k in ("run_id", "tool", "committed_at", "layout", "clip", "modalities")},
        "documents": documents_summary(documents), "labels": labels_summary(documents, top),
        "scores": scores_summary(documents), "images": images_summary(documents),
        "meshes": meshes_summary(documents, manifest["options"]), "splits": split, "duplicates": duplicates,
        "dead_letters": dead_summary,
        "inputs": inputs, "options": manifest["options"], "shards": shards, "counts": manifest["counts"],
        "reconciliation": reconciliation_summary(manifest),
        "checks": (checks(manifest, documents.num_rows, dead_summary["total"], shards)
                   + group_checks(split, duplicates, manifest["counts"])),
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
