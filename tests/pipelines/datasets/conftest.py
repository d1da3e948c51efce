"""Datasets the dataset-command tests share: real images prepared with --split, and the same dataset with
hand-made near-duplicate clusters.

The readers are tested on clusters written by hand into a prepared dataset (`stand_in_duplicates`: a
`duplicates/part-00000-of-00001.parquet` of DUPLICATE_SCHEMA rows listed in the manifest's
`shards["duplicates"]`, counts in its `counts`, `duplicate_group` in the documents shards, as the commit
writes them), so a test chooses each similarity, keeps or deletes a removed member's file, and makes what
a real run never writes (a cluster in two splits, counts that disagree with the files). Real
`--near-duplicates` runs read by summary and sprites are in tests/end_to_end/test_duplicates.py.
"""
import dataclasses
import json
import shutil
import types
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipelines
from conftest import TEST_DATA, run_prepare
from schemas.documents import DUPLICATE_SCHEMA

# CSV rows: an image and its label. hopper-copy.jpg is hopper.jpg under another name and label (two documents
# with equal content, not exact duplicates: one group, so one split); the flowers share a label (one split too).
IMAGE_ROWS = [("hopper.jpg", "hopper"), ("hopper-copy.jpg", "hopper copy"), ("flower.jpg", "flower"),
              ("flower2.jpg", "flower"), ("apple.png", "apple"), ("05978.jpg", "person a"),
              ("05979.jpg", "person b"), ("05980.jpg", "person c")]
REMOVED_IMAGE = "removed/hopper_gray.jpg"  # a removed near duplicate whose file is still there
GONE_IMAGE = "removed/gone.jpg"  # one whose file is gone


def stand_in_duplicates(out: Path, rows: list[dict], groups: dict[str, str], counts: Optional[dict] = None) -> None:
    """Hand-made clusters (see the module docstring): add DUPLICATE_SCHEMA `rows` to the dataset's
    duplicates (after those the run wrote, in one shard), set `duplicate_group` of the documents whose id is
    in `groups` ({id: kept id}), and set `counts` in the manifest's counts; shard rows and bytes are listed
    as the commit lists them (transforms.commit._completed)."""
    manifest_path = out / "manifest.json"
    written = pipelines.load_duplicates(str(out)).to_pylist()
    manifest = json.loads(manifest_path.read_text())
    for shard in manifest["shards"]["documents"]:
        path = out / shard["path"]
        table = pq.read_table(path)
        column = pa.array([groups.get(i, g) for i, g in zip(table.column("id").to_pylist(),
                                                            table.column("duplicate_group").to_pylist())], pa.string())
        table = table.set_column(table.schema.get_field_index("duplicate_group"), "duplicate_group", column)
        pq.write_table(table, path)
        shard["bytes"] = path.stat().st_size
    for shard in manifest["shards"].get("duplicates", []):
        (out / shard["path"]).unlink()
    name = "duplicates/part-00000-of-00001.parquet"
    (out / "duplicates").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(written + rows, schema=DUPLICATE_SCHEMA), out / name)
    manifest["shards"]["duplicates"] = [{"path": name, "rows": len(written + rows), "bytes": (out / name).stat().st_size}]
    manifest["counts"].update(counts or {})
    manifest_path.write_text(json.dumps(manifest, indent=2))


def near_row(document: dict, kept_id: str, similarity: float) -> dict:
    """The duplicates row of a near duplicate still in the documents (a row of load_table)."""
    return {"id": document["id"], "kept_id": kept_id, "kind": "near", "similarity": similarity, "removed": False,
            **{k: document[k] for k in ("modality", "label", "text", "uri", "source_file", "source_row")}}


def removed_row(kept: dict, similarity: float, uri: str, removed_id: str) -> dict:
    """The duplicates row of a near duplicate removed from the documents, of the kept document's modality."""
    return {"id": removed_id, "kept_id": kept["id"], "kind": "near", "similarity": similarity, "removed": True,
            "modality": kept["modality"], "label": kept["label"], "uri": uri}


def copy_dataset(out: Path, tmp: Path, name: str) -> Path:
    """A copy of a prepared dataset folder (to change without touching the shared one)."""
    return Path(shutil.copytree(out, tmp / name))


@dataclasses.dataclass(frozen=True)
class Clustered:
    """The split image dataset with two near-duplicate clusters (each: the kept document, a near duplicate in
    the documents, a removed one): hopper (its copy; REMOVED_IMAGE, readable) and flower (flower2;
    GONE_IMAGE, missing). documents: {file name: its row of load_table}."""

    out: Path
    documents: dict
    rows: list

    def id(self, name: str) -> str:
        return self.documents[name]["id"]


@pytest.fixture(scope="session")
def split_images(tmp_path_factory) -> Path:
    """IMAGE_ROWS prepared with --split train=0.5,test=0.5 (Parquet only; split seed 1: both near-duplicate
    clusters of `clustered` in test, four documents in each split), the CSV in the images' folder;
    REMOVED_IMAGE exists beside them, GONE_IMAGE does not."""
    tmp = tmp_path_factory.mktemp("split-images")
    source = TEST_DATA / "images"
    (tmp / "img").mkdir()
    (tmp / "removed").mkdir()
    for name, _ in IMAGE_ROWS:
        shutil.copyfile(source / name.replace("-copy", ""), tmp / "img" / name)
    shutil.copyfile(source / "hopper_gray.jpg", tmp / REMOVED_IMAGE)
    (tmp / "images.csv").write_text("".join(f"img/{name},{label}\n" for name, label in IMAGE_ROWS))
    return run_prepare(tmp, tmp / "images.csv", "--is-labeled", "--split", "train=0.5,test=0.5", "--split-seed", "1",
                       "--format", "parquet")


@pytest.fixture(scope="session")
def clustered(split_images, tmp_path_factory) -> Clustered:
    """split_images with its near-duplicate clusters (written by stand_in_duplicates)."""
    out = copy_dataset(split_images, tmp_path_factory.mktemp("clustered"), "dataset")
    documents = {Path(row["uri"]).name: row for row in pipelines.load_table(str(out)).to_pylist()}
    hopper, flower = documents["hopper.jpg"], documents["flower.jpg"]
    rows = [near_row(hopper, hopper["id"], 0.99), near_row(documents["hopper-copy.jpg"], hopper["id"], 0.99),
            removed_row(hopper, 0.93, REMOVED_IMAGE, "removed-gray"),
            near_row(flower, flower["id"], 0.91), near_row(documents["flower2.jpg"], flower["id"], 0.91),
            removed_row(flower, 0.87, GONE_IMAGE, "removed-gone")]
    groups = {row["id"]: row["kept_id"] for row in rows if not row["removed"]}
    stand_in_duplicates(out, rows, groups, {"near_duplicate_clusters": 2, "near_duplicates_found": 6,
                                            "near_duplicates_removed": 2})
    return Clustered(out, documents, rows)


@pytest.fixture(scope="session")
def old_split_images(split_images, tmp_path_factory) -> Path:
    """split_images as a version before duplicates were recorded wrote it: no `duplicate_group` column, no
    duplicates folder, and no near-duplicate counts."""
    out = copy_dataset(split_images, tmp_path_factory.mktemp("old"), "dataset")
    manifest = json.loads((out / "manifest.json").read_text())
    for shard in manifest["shards"]["documents"]:
        pq.write_table(pq.read_table(out / shard["path"]).drop_columns(["duplicate_group"]), out / shard["path"])
        shard["bytes"] = (out / shard["path"]).stat().st_size
    shutil.rmtree(out / "duplicates", ignore_errors=True)
    manifest["shards"].pop("duplicates", None)
    manifest["counts"] = {k: v for k, v in manifest["counts"].items() if not k.startswith("near_duplicate")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


@pytest.fixture(scope="session")
def stand_in():
    """The stand-in helpers, for tests that put clusters into datasets of their own: .duplicates
    (stand_in_duplicates), .near_row, .removed_row, .copy (copy_dataset)."""
    return types.SimpleNamespace(duplicates=stand_in_duplicates, near_row=near_row, removed_row=removed_row,
                                 copy=copy_dataset)
