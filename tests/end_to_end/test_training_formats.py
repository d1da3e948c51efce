"""Training readers on real runs: a prepared folder is a Hugging Face dataset (`datasets.load_dataset(OUT)`
gives its splits, images decoded, point clouds as [x, y, z] lists), its Parquet shards carry their features,
`pipelines.sentence_pairs` gives sentence-transformers' columns, and `--format webdataset` shards read back
with webdataset to the same documents."""
import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset
from PIL import Image

import pipelines
from conftest import ROOT, run_prepare

EXAMPLES = ROOT / "examples"
SPLIT = ("--split", "train=0.5,test=0.5")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    """The examples prepared with --split (CLIP without), Parquet; the images once more as WebDataset."""
    tmp = tmp_path_factory.mktemp("training-formats")
    return {
        "pairs": run_prepare(tmp, EXAMPLES / "seed-pairs.csv", "--split", "train=0.8,test=0.2"),
        "scores": run_prepare(tmp, EXAMPLES / "seed-scores.csv", *SPLIT, "--format", "parquet"),
        "images": run_prepare(tmp, EXAMPLES / "labeled-images.csv", *SPLIT, "--format", "parquet"),
        "meshes": run_prepare(tmp, EXAMPLES / "labeled-meshes.csv", *SPLIT, "--format", "parquet"),
        "clip": run_prepare(tmp, EXAMPLES / "clip.csv", "--format", "parquet"),
        "webdataset": run_prepare(tmp, EXAMPLES / "labeled-images.csv", *SPLIT, "--format", "webdataset"),
    }


def load(out: Path, tmp_path) -> datasets.DatasetDict:
    return datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))


def split_ids(out: Path, split: str) -> list[str]:
    return sorted(pipelines.load_table(str(out), ["id"], split=split).column("id").to_pylist())


@pytest.mark.parametrize("name", ["pairs", "scores", "images", "meshes"])
def test_load_dataset_gives_each_split_with_its_documents(prepared, tmp_path, name):
    out = prepared[name]
    loaded = load(out, tmp_path)
    per_split = pipelines.load_manifest(str(out))["splits"]["per_split"]
    assert list(loaded) == [split for split, counted in per_split.items() if counted["documents"]]
    for split, dataset in loaded.items():
        assert dataset.num_rows == per_split[split]["documents"]
        assert sorted(dataset["id"]) == split_ids(out, split)


def test_a_split_named_with_a_dash_loads_under_its_hub_name(tmp_path):
    """`datasets` allows no '-' in split names: the card names split `held-out` `held_out`, and says so."""
    out = run_prepare(tmp_path, EXAMPLES / "seed-labeled.csv", "--is-labeled", "--split", "train=0.5,held-out=0.5",
                      "--format", "parquet")
    loaded = load(out, tmp_path)
    assert list(loaded) == ["train", "held_out"]  # the seed's two labels: one in each split
    assert sorted(loaded["held_out"]["id"]) == split_ids(out, "held-out") and len(split_ids(out, "held-out")) == 3
    assert "`held-out` is `held_out`" in (out / "README.md").read_text()


def test_without_split_the_dataset_is_one_train_split(prepared, tmp_path):
    loaded = load(prepared["clip"], tmp_path)
    assert list(loaded) == ["train"] and loaded["train"].num_rows == 4


def test_images_decode_as_pil_images_documents_and_chunks_alike(prepared, tmp_path):
    images = load(prepared["images"], tmp_path)
    decoded = [row["blob"] for dataset in images.values() for row in dataset]
    assert len(decoded) == 10 and all(isinstance(image, Image.Image) for image in decoded)
    clip = load(prepared["clip"], tmp_path)["train"]
    assert all(row["chunks"][0]["blob"] is None and isinstance(row["chunks"][1]["blob"], Image.Image) for row in clip)


def test_point_clouds_are_lists_of_points_and_numpy_arrays(prepared, tmp_path):
    out = prepared["meshes"]
    train = load(out, tmp_path)["train"]
    table = pipelines.load_table(str(out), ["id", "point_cloud"], split="train")
    clouds = dict(zip(table.column("id").to_pylist(), table.column("point_cloud").to_pylist()))
    first = train[0]
    assert len(first["point_cloud"][0]) == 3 and first["point_cloud"] == clouds[first["id"]]
    arrays = train.with_format("numpy")
    for row in arrays:
        assert row["point_cloud"].shape == (len(clouds[row["id"]]), 3)
        assert np.array_equal(row["point_cloud"], np.array(clouds[row["id"]], np.float32))


def test_parquet_shards_carry_their_features(prepared, tmp_path):
    """Read without the card: the features in a shard's schema metadata decode the images."""
    out = prepared["images"]
    manifest = pipelines.load_manifest(str(out))
    files = {split: [str(out / s["path"]) for s in manifest["shards"]["documents"] if s["split"] == split]
             for split in manifest["splits"]["per_split"]}
    described = json.loads(pq.read_schema(files["train"][0]).metadata[b"huggingface"])
    features = datasets.Features.from_dict(described["info"]["features"])
    assert features["blob"] == datasets.Image()
    loaded = datasets.load_dataset("parquet", data_files=files, features=features, cache_dir=str(tmp_path / "c1"))
    assert isinstance(loaded["train"][0]["blob"], Image.Image)
    plain = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "c2"))
    assert isinstance(plain["test"].cast_column("blob", datasets.Image())[0]["blob"], Image.Image)


def test_sentence_pairs_give_each_layout_s_columns(prepared):
    pairs = pipelines.sentence_pairs(str(prepared["pairs"]), split="train")
    assert list(pairs.features) == ["anchor", "positive"] and pairs.num_rows
    table = pipelines.load_table(str(prepared["pairs"]), split="train")
    queries = {label for label, text in zip(table.column("label").to_pylist(), table.column("text").to_pylist())
               if label == text}
    assert set(pairs["anchor"]) == queries and not set(pairs["positive"]) & queries
    scores = pipelines.sentence_pairs(str(prepared["scores"]))
    assert list(scores.features) == ["sentence1", "sentence2", "score"] and scores.num_rows == 4
    images = pipelines.sentence_pairs(str(prepared["images"]), split="test")
    assert list(images.features) == ["image", "label"] and isinstance(images[0]["image"], Image.Image)
    with pytest.raises(ValueError, match="these documents are mesh"):
        pipelines.sentence_pairs(str(prepared["meshes"]))


def test_webdataset_shards_read_back_to_the_same_documents(prepared):
    out, parquet = prepared["webdataset"], prepared["images"]
    manifest = pipelines.load_manifest(str(out))
    assert manifest["shards"]["documents"] == [] and not (out / "documents").exists()
    for split in ("train", "test"):
        urls = [str(out / s["path"]) for s in manifest["shards"]["webdataset"] if s["split"] == split]
        assert [Path(u).name for u in urls] == [f"{split}-00000-of-00001.tar"]
        samples = {s["__key__"]: s for s in webdataset.WebDataset(urls, shardshuffle=False).decode()}
        expected = {row["id"]: row for row in pipelines.load_table(str(parquet), split=split).to_pylist()}
        assert sorted(samples) == sorted(expected)
        for key, sample in samples.items():
            row = expected[key]
            assert sample[{"image/jpeg": "jpg", "image/png": "png"}[row["mime_type"]]] == row["blob"]
            assert sample["json"] == {k: row[k] for k in ("id", "label", "score", "modality", "uri", "source_file",
                                                           "source_row", "split")}
