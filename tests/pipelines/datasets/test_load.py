"""The shards are plain Parquet: pandas, DuckDB and Hugging Face datasets read them without our code; and
load_table / load_duplicates read datasets of every version."""
from pathlib import Path

import datasets
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import pipelines
from pipelines.cli import main
from pipelines.datasets.load import UnknownSplit
from schemas.documents import DOCUMENT_SCHEMA, DUPLICATE_SCHEMA

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def meshes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("readers") / "meshes"
    assert main(["prepare", "--input", str(EXAMPLES / "labeled-meshes.csv"), "--is-labeled", "--output", str(out),
                 "--shard-rows", "4"]) == 0
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("readers") / "clip"
    assert main(["prepare", "--input", str(EXAMPLES / "clip.csv"), "--output", str(out)]) == 0
    return out


def shards(out: Path) -> list[str]:
    return sorted(str(p) for p in (out / "documents").glob("part-*-of-*.parquet"))


def test_pandas_reads_every_column(meshes):
    frame = pd.concat([pd.read_parquet(p) for p in shards(meshes)])
    expected = pipelines.load_table(str(meshes))
    assert len(frame) == expected.num_rows and list(frame.columns) == expected.column_names
    assert sorted(frame["label"]) == sorted(expected.column("label").to_pylist())
    assert np.stack(frame.iloc[0]["point_cloud"]).shape == (2048, 3)


def test_duckdb_groups_by_label(meshes):
    files = ", ".join(f"'{p}'" for p in shards(meshes))
    rows = duckdb.sql(f"select label, count(*) from read_parquet([{files}]) group by label order by label").fetchall()
    assert rows == [("ball", 3), ("cube", 1), ("monkey", 1), ("teapot", 1)]


def test_hugging_face_datasets_loads_point_clouds_and_chunks(meshes, clip, tmp_path):
    cache = str(tmp_path / "hf-cache")
    mesh_set = datasets.load_dataset("parquet", data_files={"train": shards(meshes)}, split="train", cache_dir=cache)
    assert mesh_set.num_rows == 6 and len(mesh_set[0]["point_cloud"]) == 2048
    clip_set = datasets.load_dataset("parquet", data_files={"train": shards(clip)}, split="train", cache_dir=cache)
    chunks = clip_set[0]["chunks"]
    first, second = (chunks[0], chunks[1]) if isinstance(chunks, list) else (
        {k: v[0] for k, v in chunks.items()}, {k: v[1] for k, v in chunks.items()})
    assert (first["modality"], second["modality"]) == ("text", "image")
    assert second["width"] > 0 and second["blob"]


def test_datasets_of_earlier_versions_load_with_the_new_columns_null(clip, tmp_path):
    """A dataset written before `point_cloud_from` and `split` existed (the columns dropped from its
    shards here, in the documents and in the chunks) still loads whole, those columns null."""
    import shutil

    import pyarrow.parquet as pq

    old = tmp_path / "old"
    shutil.copytree(clip, old)
    for shard in (old / "documents").glob("*.parquet"):
        table = pq.read_table(shard).drop_columns(["point_cloud_from", "split"])
        chunks = table.column("chunks").combine_chunks()
        kept = [f for f in chunks.type.value_type if f.name != "point_cloud_from"]
        values = pa.StructArray.from_arrays([chunks.values.field(f.name) for f in kept], fields=kept)
        older = pa.ListArray.from_arrays(chunks.offsets, values, mask=chunks.is_null())
        pq.write_table(table.set_column(table.column_names.index("chunks"), "chunks", older), shard)
    loaded, current = pipelines.load_table(str(old)), pipelines.load_table(str(clip))
    assert loaded.schema == current.schema and loaded.num_rows == current.num_rows
    assert loaded.column("split").null_count == loaded.num_rows
    assert loaded.drop_columns(["point_cloud_from", "chunks"]).equals(current.drop_columns(["point_cloud_from", "chunks"]))
    assert [[c["uri"] for c in row] for row in loaded.column("chunks").to_pylist()] == [
        [c["uri"] for c in row] for row in current.column("chunks").to_pylist()]



def test_load_duplicates_reads_the_folder_the_manifest_lists(clustered):
    """The duplicates rows come back as written, in DUPLICATE_SCHEMA; documents carry their cluster's
    kept id in duplicate_group (null outside clusters)."""
    duplicates = pipelines.load_duplicates(str(clustered.out))
    written = pa.Table.from_pylist(clustered.rows, schema=DUPLICATE_SCHEMA)
    assert duplicates.schema == DUPLICATE_SCHEMA and duplicates.sort_by("id").equals(written.sort_by("id"))
    table = pipelines.load_table(str(clustered.out), columns=["id", "duplicate_group"])
    groups = dict(zip(table.column("id").to_pylist(), table.column("duplicate_group").to_pylist()))
    hopper, flower = clustered.id("hopper.jpg"), clustered.id("flower.jpg")
    kept = {"hopper.jpg": hopper, "hopper-copy.jpg": hopper, "flower.jpg": flower, "flower2.jpg": flower}
    assert groups == {doc["id"]: kept.get(name) for name, doc in clustered.documents.items()}


def test_a_dataset_without_duplicates_loads_with_none(old_split_images, split_images):
    """Written before duplicates were recorded: no duplicates folder (an empty table) and no duplicate_group
    column (null), whether all columns are read or only some."""
    for out in (old_split_images, split_images):
        duplicates = pipelines.load_duplicates(str(out))
        assert duplicates.schema == DUPLICATE_SCHEMA and duplicates.num_rows == 0
    old = pipelines.load_table(str(old_split_images))
    assert old.schema == DOCUMENT_SCHEMA and old.column("duplicate_group").null_count == old.num_rows == 8
    some = pipelines.load_table(str(old_split_images), columns=["id", "duplicate_group"], split="test")
    assert some.column_names == ["id", "duplicate_group"] and some.column("duplicate_group").null_count == some.num_rows
    current = pipelines.load_table(str(split_images))
    assert old.drop_columns(["duplicate_group"]).equals(current.drop_columns(["duplicate_group"]))


def test_an_unknown_split_is_a_value_error_naming_the_splits(split_images):
    with pytest.raises(UnknownSplit, match=r"no split 'dev' \(its splits: train, test\)") as caught:
        pipelines.load_table(str(split_images), split="dev")
    assert isinstance(caught.value, ValueError) and caught.value.names == ["train", "test"]
