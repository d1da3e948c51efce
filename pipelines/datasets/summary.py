"""`finetune-etl summary URL [--json] [--top N]`: what a prepared dataset holds, and whether it adds up.

Reads the manifest, the Parquet footers and a few small columns (never `blob`, `point_cloud` or the
chunks' blobs), with pyarrow and numpy alone: importing docarray or pandas (which pyarrow imports as soon
as it converts a Python value, builds a numpy array or groups a table) took longer than reading a million
documents. `summarize(url, top)` returns the dict that `--json` prints; its keys:

    url, run_id, tool, committed_at, layout, clip, modalities    from the manifest
    documents     {total, by_modality: {modality: n}, pairs: {"text+image": n}}  (pairs: two-chunk docs)
    labels        null, or {count, per_label: {min, median, max}, largest: [{label, documents}]}
    scores        null, or {count, min, median, max, histogram: [{low, high, documents}]}  (10 bins on [0, 1])
    images        null, or {count, width: {min, median, max}, height: {min, median, max}, mime_types: {type: n}}
    meshes        null, or {count, points_per_cloud}  (documents and chunks; points: the run's setting,
                  null when the run did not sample point clouds)
    splits        null, or (with --split) {per_split: {name: {documents, labels}}, labels_in_two_splits,
                  content_in_two_splits, labels_kept_whole, largest_groups}  (read from the files: texts
                  and URIs of documents and chunks; the checks below expect 0 of each)
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
from schemas.documents import CHUNK_TYPE, DOCUMENT_SCHEMA
from schemas.modalities import PAIR
from transforms.split.nodes import keeps_labels_whole

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
    media = MEDIA_FIELDS if _count(modality, "image") else []
    chunks = [f"chunks.list.element.{f}" for f in CHUNK_FIELDS] if _count(modality, PAIR) else []
    if media or chunks:
        extra = pa.concat_tables(read_parquet_shards(url, shards, media + chunks), promote_options="permissive")
        for name in extra.column_names:
            documents = documents.append_column(name, extra.column(name))
    for field in [DOCUMENT_SCHEMA.field(f) for f in MEDIA_FIELDS] + [CHUNKS]:
        if field.name not in documents.column_names:
            documents = documents.append_column(field, pa.nulls(documents.num_rows, field.type))
    return documents, sum(t.num_rows for t in tables)


def _count(values: pa.ChunkedArray, value: str) -> int:
    """How many of `values` equal `value`."""
    return pc.sum(pc.equal(values, _string(value)), min_count=0).as_py()


def _string(text: str) -> pa.Scalar:
    """A Python string -> an Arrow string scalar, built from its bytes (pyarrow imports pandas, ~0.4 s, the
    first time it converts a Python value)."""
    data = text.encode()
    return pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, len(data)], dtype=np.int32)), pa.py_buffer(data))[0]


def _numbers(values: pa.ChunkedArray) -> np.ndarray:
    """Arrow numbers -> the non-null ones as float64 (n,), through DLPack (np.asarray would import pandas)."""
    return np.from_dlpack(values.drop_null().combine_chunks().cast(pa.float64()))


def _stats(values: np.ndarray) -> Optional[dict]:
    """Numbers (n,) -> {min, median, max}, or None when there are none."""
    if not values.size:
        return None
    return {"min": _number(values.min()), "median": float(np.median(values)), "max": _number(values.max())}


def _number(value: float):
    return int(value) if float(value).is_integer() else float(value)


def _chunks(documents: pa.Table) -> pa.ChunkedArray:
    """The chunks of every document, flattened: one struct per chunk (n_chunks,)."""
    return pc.list_flatten(documents.column("chunks"))


def _counts(values) -> pa.Table:
    """Values -> a table of each distinct value (nulls left out) and how many times it occurs: (value, count)."""
    counts = pc.value_counts(values)
    table = pa.table({"value": counts.field("values"), "count": counts.field("counts")})
    return table.filter(pc.is_valid(table.column("value")))


def _tally(values) -> dict:
    """Values -> {value: how many}, sorted by value (nulls left out)."""
    counts = _counts(values)
    return dict(sorted(zip(counts.column("value").to_pylist(), counts.column("count").to_pylist())))


def _kinds(chunks: pa.ChunkedArray) -> pa.ChunkedArray:
    """The chunks column -> per document, its chunks' modalities joined by "+" ("text+image"; null without chunks)."""
    modalities = [pa.ListArray.from_arrays(c.offsets, c.values.field("modality"), mask=c.is_null())
                  for c in chunks.chunks]
    return pc.binary_join(pa.chunked_array(modalities, pa.list_(pa.string())), _string("+"))


def documents_summary(documents: pa.Table) -> dict:
    return {"total": documents.num_rows, "by_modality": _tally(documents.column("modality")),
            "pairs": _tally(_kinds(documents.column("chunks")))}


def labels_summary(documents: pa.Table, top: int) -> Optional[dict]:
    counts = _counts(documents.column("label"))
    if not counts.num_rows:
        return None
    order = [("count", "descending"), ("value", "ascending")]
    largest = counts.take(pc.select_k_unstable(counts, top, sort_keys=order))
    return {"count": counts.num_rows, "per_label": _stats(_numbers(counts.column("count"))),
            "largest": [{"label": label, "documents": n}
                        for label, n in zip(largest.column("value").to_pylist(), largest.column("count").to_pylist())]}


def scores_summary(documents: pa.Table) -> Optional[dict]:
    scores = _numbers(documents.column("score"))
    if not scores.size:
        return None
    counts, edges = np.histogram(scores, bins=SCORE_BINS, range=(0.0, 1.0))
    return dict(count=int(scores.size), **_stats(scores),
                histogram=[{"low": round(float(lo), 2), "high": round(float(hi), 2), "documents": int(n)}
                           for lo, hi, n in zip(edges[:-1], edges[1:], counts)])


def _media(documents: pa.Table, kind: str) -> dict[str, pa.ChunkedArray]:
    """CHUNK_FIELDS of the documents and chunks of one modality -> {field: values (documents', then chunks')}."""
    chunks = _chunks(documents)
    own = pc.equal(documents.column("modality"), _string(kind))
    of_kind = pc.equal(pc.struct_field(chunks, "modality"), _string(kind))
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
    return {"count": len(images["modality"]), "width": _stats(_numbers(images["width"])),
            "height": _stats(_numbers(images["height"])),
            "mime_types": _tally(images["mime_type"])}


def meshes_summary(documents: pa.Table, options: dict) -> Optional[dict]:
    chunk_modality = pc.struct_field(_chunks(documents), "modality")
    meshes = _count(documents.column("modality"), "mesh") + _count(chunk_modality, "mesh")
    if not meshes:
        return None
    sampled = options.get("media", {}).get("create_point_clouds", True)
    return {"count": meshes, "points_per_cloud": options["media"]["point_cloud_size"] if sampled else None}


def _first(values: pa.ChunkedArray):
    """The first non-null value, or None."""
    values = values.drop_null()
    return values[0].as_py() if len(values) else None


def dead_letters_summary(dead: Optional[pa.Table], top: int) -> dict:
    """Dead letters -> {total, by_stage, top}; each (stage, reason_class) with an example: the first non-null
    source_file, source_row and reason of its rows in file and row order. (Grouped with filters:
    Table.group_by imports pyarrow.dataset, and with it pandas, which took a second.)"""
    if dead is None or not dead.num_rows:
        return {"total": 0, "by_stage": {}, "top": []}
    dead = dead.sort_by([("source_file", "ascending"), ("source_row", "ascending")])
    by_stage, groups = _tally(dead.column("stage")), []
    for stage in by_stage:
        of_stage = dead.filter(pc.equal(dead.column("stage"), _string(stage)))
        for reason_class, count in _tally(of_stage.column("reason_class")).items():
            rows = of_stage.filter(pc.equal(of_stage.column("reason_class"), _string(reason_class)))
            groups.append({"stage": stage, "reason_class": reason_class, "count": count,
                           "example": {k: _first(rows.column(k)) for k in ("source_file", "source_row", "reason")}})
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


def _crossing(values: pa.Array, splits: pa.Array) -> int:
    """How many distinct non-null values occur in more than one split."""
    pairs = pa.table({"value": values, "split": splits}).filter(pc.is_valid(values))
    distinct = pairs.group_by(["value", "split"]).aggregate([]).column("value")
    return int(pc.sum(pc.greater(pc.value_counts(distinct).field("counts"), 1)).as_py() or 0)


def splits_summary(url: str, manifest: dict) -> Optional[dict]:
    """With --split: per split, documents and distinct labels, read from the files; and how many labels and
    how many texts or URIs (of documents and chunks) the files show in two splits (0 expected; labels only
    where the split keeps them whole)."""
    splits = manifest.get("splits")
    if not splits:
        return None
    columns = ["split", "label", "text", "uri", "chunks.list.element.text", "chunks.list.element.uri"]
    table = pa.concat_tables(read_parquet_shards(url, manifest["shards"]["documents"], columns))
    split = table.column("split").combine_chunks()
    labels = table.column("label").combine_chunks()
    per_split = {}
    for name in splits["per_split"]:
        mine = pc.equal(split, name)
        per_split[name] = {"documents": int(pc.sum(mine).as_py() or 0),
                           "labels": len(pc.unique(labels.filter(mine).drop_null()))}
    chunks = table.column("chunks").combine_chunks()
    chunk_splits = split.take(pc.list_parent_indices(chunks))
    content = pa.concat_arrays([table.column("text").combine_chunks(), table.column("uri").combine_chunks(),
                                pc.list_flatten(chunks).field("text"), pc.list_flatten(chunks).field("uri")])
    content_splits = pa.concat_arrays([split, split, chunk_splits, chunk_splits])
    return {"per_split": per_split, "labels_in_two_splits": _crossing(labels, split),
            "content_in_two_splits": _crossing(content, content_splits),
            "labels_kept_whole": keeps_labels_whole(manifest["layout"], splits["by"]),
            "largest_groups": splits["largest_groups"]}


def _split_checks(split: Optional[dict]) -> list[dict]:
    if split is None:
        return []
    found = [("texts and URIs found in two splits", 0, split["content_in_two_splits"])]
    if split["labels_kept_whole"]:
        found.append(("labels found in two splits", 0, split["labels_in_two_splits"]))
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
    split = splits_summary(url, manifest)
    return {
        "url": url, **{k: manifest.get(k) for k in ("run_id", "tool", "committed_at", "layout", "clip", "modalities")},
        "documents": documents_summary(documents), "labels": labels_summary(documents, top),
        "scores": scores_summary(documents), "images": images_summary(documents),
        "meshes": meshes_summary(documents, manifest["options"]), "splits": split, "dead_letters": dead_summary,
        "inputs": inputs, "options": manifest["options"], "shards": shards, "counts": manifest["counts"],
        "reconciliation": reconciliation_summary(manifest),
        "checks": checks(manifest, documents.num_rows, dead_summary["total"], shards) + _split_checks(split),
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
