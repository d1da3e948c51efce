"""The summary's splits and duplicates: documents that belong together, read from the files.

`splits_summary` reads each document's split with its texts, URIs, label and near-duplicate cluster
(`duplicate_group`), and counts what the files show in two splits. `duplicates_summary` reads the
`duplicates/` folder: exact duplicates removed, near-duplicate clusters, and the largest clusters with
examples. `group_checks` says what the verdict expects of both.
"""
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.datasets.arrow_counts import text_scalar, value_counts
from pipelines.datasets.load import DUPLICATES, read_parquet_shards
from schemas.documents import DUPLICATE_SCHEMA
from transforms.split.nodes import keeps_labels_whole

SPLIT_COLUMNS = ["split", "label", "text", "uri", "duplicate_group", "chunks.list.element.text",
                 "chunks.list.element.uri"]
DUPLICATE_COLUMNS = ["id", "kept_id", "kind", "similarity", "removed", "text", "uri"]
LARGEST_CLUSTERS = 5
EXAMPLES = 3  # member texts or URIs shown per cluster
EXAMPLE_CHARS = 60


def _crossing(values: pa.Array, splits: pa.Array) -> int:
    """How many distinct non-null values occur in more than one split."""
    pairs = pa.table({"value": values, "split": splits}).filter(pc.is_valid(values))
    distinct = pairs.group_by(["value", "split"]).aggregate([]).column("value")
    return int(pc.sum(pc.greater(pc.value_counts(distinct).field("counts"), 1)).as_py() or 0)


def splits_summary(url: str, manifest: dict) -> Optional[dict]:
    """With --split: per split, documents and distinct labels, read from the files; and how many labels, how
    many texts or URIs (of documents and chunks) and how many near-duplicate clusters the files show in two
    splits (0 expected; labels only where the split keeps them whole; clusters null for files written before
    `duplicate_group` existed)."""
    splits = manifest.get("splits")
    if not splits:
        return None
    table = pa.concat_tables(read_parquet_shards(url, manifest["shards"]["documents"], SPLIT_COLUMNS))
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
    clusters = None
    if "duplicate_group" in table.column_names:
        clusters = _crossing(table.column("duplicate_group").combine_chunks(), split)
    return {"per_split": per_split, "labels_in_two_splits": _crossing(labels, split),
            "content_in_two_splits": _crossing(content, content_splits),
            "duplicate_groups_in_two_splits": clusters,
            "labels_kept_whole": keeps_labels_whole(manifest["layout"], splits["by"]),
            "largest_groups": splits["largest_groups"]}


def read_duplicates(url: str, manifest: dict) -> Optional[pa.Table]:
    """DUPLICATE_COLUMNS of the rows in the manifest's `duplicates` shards; None when it lists none (a dataset
    written before duplicates were recorded)."""
    if DUPLICATES not in manifest["shards"]:
        return None
    tables = read_parquet_shards(url, manifest["shards"][DUPLICATES], DUPLICATE_COLUMNS)
    return pa.concat_tables(tables) if tables else DUPLICATE_SCHEMA.empty_table().select(DUPLICATE_COLUMNS)


def cluster_sizes(rows: pa.Table) -> pa.Table:
    """Duplicate rows of one kind -> (value: kept_id, count: documents of its cluster), counting its rows and
    the kept document when it has no row of its own."""
    sizes = value_counts(rows.column("kept_id"))
    if not sizes.num_rows:  # (combine_chunks of no chunks imports pandas)
        return sizes
    own_row = rows.filter(pc.equal(rows.column("id"), rows.column("kept_id"))).column("kept_id").combine_chunks()
    kept_apart = pc.invert(pc.is_in(sizes.column("value"), value_set=own_row)).cast(pa.int64())
    return sizes.set_column(1, "count", pc.add(sizes.column("count"), kept_apart))


def _removed(rows: pa.Table) -> int:
    return int(pc.sum(rows.column("removed"), min_count=0).as_py())


def duplicates_summary(table: Optional[pa.Table]) -> Optional[dict]:
    """Rows of DUPLICATE_COLUMNS (or None) -> None, or {exact_removed, near_clusters, near_found, near_removed,
    largest_clusters}: near_found counts the documents of the near clusters, kept ones included."""
    if table is None:
        return None
    kinds = {kind: table.filter(pc.equal(table.column("kind"), text_scalar(kind))) for kind in ("exact", "near")}
    near_sizes = cluster_sizes(kinds["near"])
    return {"exact_removed": _removed(kinds["exact"]), "near_clusters": near_sizes.num_rows,
            "near_found": int(pc.sum(near_sizes.column("count"), min_count=0).as_py()),
            "near_removed": _removed(kinds["near"]), "largest_clusters": largest_clusters(kinds)}


def largest_clusters(kinds: dict[str, pa.Table]) -> list[dict]:
    """{kind: its duplicate rows} -> the LARGEST_CLUSTERS largest clusters of either kind (ties by kind, then
    kept id): [{kept_id, kind, size, similarity: {min, max}, examples: [{id, removed, text, uri}]}]; the
    examples are the kept document's row first, then the most similar, texts cut to EXAMPLE_CHARS."""
    order = [("count", "descending"), ("value", "ascending")]
    candidates = []
    for kind, rows in kinds.items():
        sizes = cluster_sizes(rows)
        if not sizes.num_rows:  # (select_k_unstable fails on an empty table)
            continue
        top = sizes.take(pc.select_k_unstable(sizes, LARGEST_CLUSTERS, sort_keys=order)).to_pydict()
        candidates += [(-size, kind, kept) for kept, size in zip(top["value"], top["count"])]
    clusters = []
    for size, kind, kept in sorted(candidates)[:LARGEST_CLUSTERS]:
        rows = kinds[kind].filter(pc.equal(kinds[kind].column("kept_id"), text_scalar(kept)))
        is_kept = pc.equal(rows.column("id"), text_scalar(kept))
        others = rows.filter(pc.or_kleene(pc.is_null(rows.column("id")), pc.invert(is_kept)))
        most_similar = others.sort_by([("similarity", "descending"), ("id", "ascending")]).slice(0, EXAMPLES)
        examples = (rows.filter(is_kept).to_pylist() + most_similar.to_pylist())[:EXAMPLES]
        similarity = pc.min_max(rows.column("similarity"))
        clusters.append({"kept_id": kept, "kind": kind, "size": -size,
                         "similarity": {"min": similarity["min"].as_py(), "max": similarity["max"].as_py()},
                         "examples": [{"id": r["id"], "removed": r["removed"], "text": _cut(r["text"]), "uri": r["uri"]}
                                      for r in examples]})
    return clusters


def _cut(text: Optional[str]) -> Optional[str]:
    """A text on one line, cut to EXAMPLE_CHARS (with "...")."""
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS - 3].rstrip() + "..."


def group_checks(split: Optional[dict], duplicates: Optional[dict], counts: dict) -> list[dict]:
    """What the files must show: nothing in two splits (0 of each), and duplicates that agree with the
    manifest's counts (those it has)."""
    found = []
    if split is not None:
        found.append(("texts and URIs found in two splits", 0, split["content_in_two_splits"]))
        if split["labels_kept_whole"]:
            found.append(("labels found in two splits", 0, split["labels_in_two_splits"]))
        if split["duplicate_groups_in_two_splits"] is not None:
            found.append(("near-duplicate clusters found in two splits", 0,
                          split["duplicate_groups_in_two_splits"]))
    if duplicates is not None:
        found.append(("exact duplicates in the files = duplicates_removed - query_repeats",
                      counts.get("duplicates_removed", 0) - counts.get("query_repeats", 0), duplicates["exact_removed"]))
        for key, figure, name in (("near_duplicate_clusters", "near_clusters", "near-duplicate clusters"),
                                  ("near_duplicates_found", "near_found", "documents in near-duplicate clusters"),
                                  ("near_duplicates_removed", "near_removed", "near duplicates removed")):
            if key in counts:
                found.append((f"{name} in the files = counts.{key}", counts[key], duplicates[figure]))
    return [{"check": name, "expected": expected, "found": got, "holds": expected == got}
            for name, expected, got in found]
