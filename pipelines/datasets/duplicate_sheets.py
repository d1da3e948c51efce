"""`finetune-etl sprites URL --duplicates --output FILE.png`: a sheet per near-duplicate cluster of images or meshes.

Clusters are read from the dataset's duplicates folder (rows of kind "near", grouped by kept_id), largest
first (ties by kept id): up to --count clusters (of a split with --split, of a label with --label: those
with a document there), each showing up to --count of its documents, the kept one first, then the most
similar. A document still in the dataset is drawn from its blob or point cloud, as sprites and preview draw
them; a removed one (or one stored without its bytes) from its `uri` when that is a local file or fsspec
URL that can be read (a relative one under the manifest's media_root), else a placeholder tile that says
"removed" (or "unreadable") and the URI. Cluster k's sheet is written to FILE-k.png (FILE-k.jpg, ...).
"""
import argparse
import dataclasses
import posixpath
from collections import defaultdict
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from pipelines.datasets.contact_sheet import MARGIN, SheetError, picture, placeholder, unknown_split, write_sheet
from pipelines.datasets.load import UnknownSplit, check_split, load_duplicates, load_manifest, load_table
from pipelines.datasets.preview import cloud_points, render_cloud
from transforms.storage import filesystem
from transforms.uris import resolve

CONTENT = {"image": "blob", "mesh": "point_cloud"}  # the modalities drawn, and the column each is drawn from
NOUNS = {"image": "images", "mesh": "point clouds"}
CLOUD_POINTS = 2048  # points sampled from a removed mesh's file


@dataclasses.dataclass(frozen=True)
class Member:
    """A document of a cluster: its id, whether it is the kept one, whether it was removed from the documents,
    its similarity (None for a kept document without a row of its own) and its uri."""

    id: str
    kept: bool
    removed: bool
    similarity: Optional[float]
    uri: Optional[str]


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A near-duplicate cluster: the kept document's id, the modality of its documents, its members (the kept
    one first, then by similarity, highest first, then id) and its documents' labels."""

    kept_id: str
    modality: str
    members: list[Member]
    labels: frozenset


def near_clusters(duplicates: pa.Table, documents: pa.Table) -> list[Cluster]:
    """Duplicate rows (DUPLICATE_SCHEMA) and documents (id, modality, label, uri) -> the near-duplicate
    clusters of images or meshes, largest first, ties by kept id. A kept document with no row of its own
    is taken from the documents."""
    near = duplicates.filter(pc.equal(duplicates.column("kind"), "near")).to_pylist()
    rows = defaultdict(list)
    for row in near:
        rows[row["kept_id"]].append(row)
    kept_docs = documents.filter(pc.is_in(documents.column("id"), value_set=pa.array(list(rows), pa.string())))
    kept_docs = {doc["id"]: doc for doc in kept_docs.to_pylist()}
    clusters = []
    for kept_id, members in rows.items():
        kept = kept_docs.get(kept_id)
        if not any(m["id"] == kept_id for m in members) and kept is not None:
            members.append({**kept, "removed": False, "similarity": None})
        modality = next((m["modality"] for m in members if m["modality"]), None)
        if modality not in CONTENT:
            continue
        members.sort(key=lambda m: (m["id"] != kept_id, -(m["similarity"] or 0.0), m["id"]))
        clusters.append(Cluster(kept_id, modality, [Member(m["id"], m["id"] == kept_id, m["removed"], m["similarity"],
                                                           m["uri"]) for m in members],
                                frozenset(m["label"] for m in members if m["label"] is not None)))
    return sorted(clusters, key=lambda c: (-len(c.members), c.kept_id))


def caption(member: Member) -> str:
    """A tile's caption: the member's id, after "kept" for the kept one, else after its similarity (and
    "removed" for one no longer in the documents)."""
    if member.kept:
        return f"kept {member.id}"
    return f"{member.similarity:.2f} {'removed ' if member.removed else ''}{member.id}"


def read_uri(uri: Optional[str], media_root: Optional[str]) -> Optional[bytes]:
    """The bytes of the file a uri names (a relative one under media_root), or None when it cannot be read."""
    if not uri:
        return None
    try:
        fs, path = filesystem(resolve(uri, media_root))
        return fs.cat_file(path)
    except Exception:  # whatever the filesystem raises (missing file, unknown protocol, network): a placeholder
        return None


def file_cloud_picture(data: bytes, uri: str, side: int) -> Optional[Image.Image]:
    """A mesh file's bytes -> its point cloud drawn as preview draws one; None when it is no mesh we read.
    (Imports the mesh readers, and trimesh, only when a removed mesh is drawn.)"""
    from transforms.media.meshes import point_cloud

    cloud = point_cloud(data, posixpath.splitext(uri)[1].lstrip(".").lower(), CLOUD_POINTS)
    return render_cloud(cloud.astype(np.float64), side) if isinstance(cloud, np.ndarray) else None


def tile(member: Member, modality: str, stored: Optional[pa.Scalar], tile_size: int,
         media_root: Optional[str]) -> Image.Image:
    """A member's picture for a tile of tile_size: from `stored` (its blob or point_cloud in the documents, or
    None), else from the file its uri names, else a placeholder that says so and names the uri."""
    side, drawn = tile_size - 2 * MARGIN, None
    if stored is not None and stored.is_valid:
        drawn = picture(stored.as_py(), side) if modality == "image" else render_cloud(cloud_points(stored), side)
    data = read_uri(member.uri, media_root) if drawn is None else None
    if data is not None:
        drawn = picture(data, side) if modality == "image" else file_cloud_picture(data, member.uri, side)
    if drawn is None:
        return placeholder(["removed" if member.removed else "unreadable", member.uri or "(no uri)"], side, tile_size)
    return drawn


def numbered(output: str, n: int) -> str:
    """FILE.png, 3 -> FILE-3.png: the name of cluster n's sheet."""
    stem, suffix = posixpath.splitext(output)
    return f"{stem}-{n}{suffix}"


def _chosen(args: argparse.Namespace, clusters: list[Cluster], documents: pa.Table) -> list[Cluster]:
    """The clusters with a document in args.split and of args.label (when given); SheetError when none are."""
    if args.split is not None:
        in_split = set(documents.filter(pc.equal(documents.column("split"), args.split)).column("id").to_pylist())
        clusters = [c for c in clusters if any(m.id in in_split for m in c.members)]
    if args.label is not None:
        clusters = [c for c in clusters if args.label in c.labels]
    if not clusters:
        where = "".join([f" with a document in split {args.split!r}" if args.split is not None else "",
                         f" with a document labeled {args.label!r}" if args.label is not None else ""])
        raise SheetError(f"{args.url} holds no near-duplicate clusters of images or meshes{where}; --duplicates "
                         "draws those that near-duplicate detection recorded in the dataset's duplicates folder.")
    return clusters


def _pictures(cluster: Cluster, shown: list[Member], documents: pa.Table, args: argparse.Namespace,
              media_root: Optional[str]) -> list[Image.Image]:
    """The tiles of the shown members of a cluster: stored content for those in the documents."""
    ids = pa.array([m.id for m in shown if not m.removed], pa.string())
    stored = documents.filter(pc.is_in(documents.column("id"), value_set=ids))
    content = dict(zip(stored.column("id").to_pylist(), stored.column(CONTENT[cluster.modality])))
    return [tile(m, cluster.modality, content.get(m.id), args.tile, media_root) for m in shown]


def draw_duplicates(args: argparse.Namespace) -> str:
    """Parsed options -> a sheet per cluster written to numbered(args.output, k); returns the lines to print."""
    manifest = load_manifest(args.url)
    if args.split is not None:
        try:
            check_split(manifest, args.split)
        except UnknownSplit as error:
            raise SheetError(unknown_split(args.url, error)) from None
    duplicates = load_duplicates(args.url)
    kinds = sorted(set(duplicates.column("modality").unique().to_pylist()) & set(CONTENT))
    documents = load_table(args.url, columns=["id", "label", "modality", "uri", "split", *(CONTENT[k] for k in kinds)])
    clusters = _chosen(args, near_clusters(duplicates, documents.select(["id", "modality", "label", "uri"])), documents)
    lines = []
    for n, cluster in enumerate(clusters[:args.count], start=1):
        shown = cluster.members[:args.count]
        pictures = _pictures(cluster, shown, documents, args, manifest.get("media_root"))
        removed = sum(m.removed for m in cluster.members)
        more = "; showing the most similar" if len(shown) < len(cluster.members) else ""
        note = (f" (near-duplicate cluster {n} of {len(clusters)}: kept {cluster.kept_id}, "
                f"{len(cluster.members)} documents, {removed} removed{more})")
        sheet_args = argparse.Namespace(**vars(args) | {"output": numbered(args.output, n)})
        lines.append(write_sheet(pictures, [caption(m) for m in shown], sheet_args, NOUNS[cluster.modality], note))
    if len(clusters) > args.count:
        lines.append(f"finetune-etl: drew the {args.count} largest of {len(clusters)} near-duplicate clusters "
                     f"(--count {args.count}).")
    return "\n".join(lines)
