"""transforms.write.dataset_card: README.md makes a dataset folder a Hugging Face dataset (its configs name
each split's Parquet shards, its dataset_info the columns' features) and says how the data was made; the
commit publishes it with the manifest (local: in the swapped folder; object stores: in the version and at
the top, after the manifest). Whole runs loaded with `datasets`: tests/end_to_end/test_training_formats.py."""
import uuid

import datasets
import yaml
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard

import pipelines
from conftest import run_prepare
from schemas.documents import DOCUMENT_SCHEMA
from transforms.commit import publish
from transforms.staging import shards_url, staging_url
from transforms.storage import filesystem, join_url
from transforms.write.dataset_card import README, data_files, dataset_card
from transforms.write.hf_features import features
from transforms.write.parquet import ParquetShards
from transforms.write.shard_writer import write_shard


def manifest(shards: list[dict], fractions=(), **extra) -> dict:
    """A completed manifest with these Parquet shards and nothing else to say."""
    return {"run_id": "R1", "tool": "finetune-etl 0.1.0", "committed_at": "2026-01-01T00:00:00+00:00",
            "options": {"output": {"output": "/data/my-set", "format": "parquet"},
                        "split": {"fractions": [list(f) for f in fractions], "seed": 0, "by": "label"}},
            "shards": {"documents": shards, "dead_letters": []}, "counts": {}, **extra}


def shard(path: str, split: str = "") -> dict:
    return {"path": path, "rows": 1, "bytes": 1, **({"split": split} if split else {})}


def front(card: bytes) -> dict:
    text = card.decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_without_split_one_train_split_of_every_part():
    files = data_files(manifest([shard("documents/part-00000-of-00002.parquet"),
                                 shard("documents/part-00001-of-00002.parquet")]))
    assert files == [{"split": "train", "path": "documents/part-*.parquet"}]


def test_each_split_is_a_glob_in_split_option_order():
    shards = [shard("documents/test-00000-of-00001.parquet", "test"),
              shard("documents/train-00000-of-00002.parquet", "train"),
              shard("documents/train-00001-of-00002.parquet", "train"),
              shard("documents/validation-00000-of-00001.parquet", "validation")]
    files = data_files(manifest(shards, [("train", 0.8), ("validation", 0.1), ("test", 0.1)]))
    assert files == [{"split": "train", "path": "documents/train-*.parquet"},
                     {"split": "validation", "path": "documents/validation-*.parquet"},
                     {"split": "test", "path": "documents/test-*.parquet"}]


def test_a_glob_that_would_take_another_split_s_shards_is_a_list_of_paths():
    shards = [shard("documents/train-00000-of-00001.parquet", "train"),
              shard("documents/train-extra-00000-of-00001.parquet", "train-extra")]
    files = data_files(manifest(shards, [("train", 0.5), ("train-extra", 0.5)]))
    assert files == [{"split": "train", "path": ["documents/train-00000-of-00001.parquet"]},
                     {"split": "train_extra", "path": "documents/train-extra-*.parquet"}]  # datasets refuses '-'



def test_object_store_shards_are_listed_by_path():
    shards = [shard("versions/R1/documents/b00000-0000.parquet", "train"),
              shard("versions/R1/documents/b00001-0000.parquet", "test"),
              shard("versions/R1/documents/b00001-0001.parquet", "train")]
    assert data_files(manifest(shards, [("train", 0.8), ("test", 0.2)])) == [
        {"split": "train", "path": ["versions/R1/documents/b00000-0000.parquet",
                                    "versions/R1/documents/b00001-0001.parquet"]},
        {"split": "test", "path": ["versions/R1/documents/b00001-0000.parquet"]}]


def test_datasets_reads_the_configs_and_the_features_from_the_card():
    shards = [shard("documents/train-00000-of-00001.parquet", "train"),
              shard("documents/test-00000-of-00001.parquet", "test")]
    card = DatasetCard(dataset_card(manifest(shards, [("train", 0.8), ("test", 0.2)])).decode())
    configs = MetadataConfigs.from_dataset_card_data(card.data)
    assert configs == {"default": {"data_files": [{"split": "train", "path": "documents/train-*.parquet"},
                                                  {"split": "test", "path": "documents/test-*.parquet"}]}}
    assert DatasetInfosDict.from_dataset_card_data(card.data)["default"].features == \
        datasets.Features.from_dict(features(DOCUMENT_SCHEMA))


def test_a_run_without_parquet_documents_has_a_card_without_configs():
    card = dataset_card(manifest([])).decode()
    assert not card.startswith("---") and "load_dataset" not in card
    assert card.startswith("# my-set\n")


def test_the_body_says_how_the_data_was_made():
    inputs = [{"url": f"gs://bucket/in/{n}.csv", "size": 1234567} for n in range(7)]
    counts = {"rows_read": 12000, "documents_written": 11000, "duplicates_removed": 40, "dead_letters": 3,
              "dead_letters.layout.empty_value": 2, "dead_letters.media.image": 1}
    described = manifest([shard("documents/train-00000-of-00001.parquet", "train")], [("train", 1.0)],
                         layout="pairs", clip=False, inputs=inputs, counts=counts,
                         splits={"per_split": {"train": {"documents": 11000}}})
    described["options"]["csv"] = {"layout": "pairs", "score_scale": None}
    described["options"]["output"]["overwrite"] = True
    body = dataset_card(described).decode().split("---\n", 2)[2]
    assert body.splitlines()[:12] == [
        "",
        "# my-set",
        "",
        "Training documents for embedding fine-tuning, prepared by finetune-etl 0.1.0 (run `R1`, committed "
        "2026-01-01T00:00:00+00:00).",
        "",
        "- Layout: `pairs`, query-document pairs: each query and each document is a document labelled with the "
        "query's text.",
        "- Inputs: `gs://bucket/in/0.csv` (1,234,567 bytes), `gs://bucket/in/1.csv` (1,234,567 bytes), "
        "`gs://bucket/in/2.csv` (1,234,567 bytes), `gs://bucket/in/3.csv` (1,234,567 bytes), "
        "`gs://bucket/in/4.csv` (1,234,567 bytes), and 2 more.",
        "- Options other than the defaults: `csv.layout` = \"pairs\", `output.format` = \"parquet\", "
        "`split.fractions` = train=1.0.",
        "- Documents: 11,000 written (train 11,000) from 12,000 rows read; 40 exact duplicates removed.",
        "- Dead letters: 3 (by stage and reason: layout empty_value 2, media image 1), in `dead_letters/` "
        "(`finetune-etl errors` explains them).",
        "- Files: `documents/` (1 file); `manifest.json` lists every file with its rows and bytes.",
        "",
    ]
    assert 'dataset = load_dataset("path/to/this/folder")' in body


def test_a_local_run_publishes_its_card_beside_its_manifest_each_glob_naming_its_split_s_shards(tmp_path):
    out = run_prepare(tmp_path, "".join(f"text {i},label {i % 4}\n" for i in range(24)), "--is-labeled",
                      "--split", "train=0.5,test=0.5", "--format", "parquet", "--shard-rows", "2")
    manifest = pipelines.load_manifest(str(out))
    assert (out / README).read_bytes() == dataset_card(manifest)
    entries = front((out / README).read_bytes())["configs"][0]["data_files"]
    assert [entry["split"] for entry in entries] == ["train", "test"]
    for entry in entries:
        named = sorted(str(p.relative_to(out)) for p in out.glob(entry["path"]))
        listed = sorted(s["path"] for s in manifest["shards"]["documents"] if s["split"] == entry["split"])
        assert named == listed and len(listed) > 1


def test_an_object_store_run_writes_its_card_in_its_version_and_at_the_top():
    out = f"memory://card-{uuid.uuid4().hex}/out"
    fs, path = filesystem(out)
    try:
        url = join_url(shards_url(out, "R1"), "documents", "b00000-0000.parquet")
        staged = [write_shard(ParquetShards, DOCUMENT_SCHEMA.empty_table(), url)]
        options = {"output": {"format": "parquet", "overwrite": False, "keep_versions": 1}}
        published = publish(out, staging_url(out, "R1"), staged, {}, {"run_id": "R1", "options": options})
        card = fs.cat_file(join_url(path, README))
        assert card == fs.cat_file(join_url(path, "versions/R1", README)) == dataset_card(published)
        (listed,) = front(card)["configs"][0]["data_files"]
        assert listed == {"split": "train", "path": ["versions/R1/documents/b00000-0000.parquet"]}
        assert fs.exists(join_url(path, listed["path"][0]))
    finally:
        fs.rm(path, recursive=True)
