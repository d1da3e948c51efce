"""pipelines.sentence_pairs: a prepared dataset as a datasets.Dataset with sentence-transformers' columns:
pairs -> (anchor, positive) rebuilt from labels, scores -> (sentence1, sentence2, score), labeled -> (text or
image, label) with label a class id the same in every split; CLIP pairs -> (anchor text, positive image)."""
import shutil

import datasets
import pytest
from PIL import Image

import pipelines
from conftest import ROOT, TEST_DATA, run_prepare
from pipelines.datasets.load import UnknownSplit

PAIRS = "q one,doc a\nq one,doc b\nq two,doc c\nq three,doc d\nq four,doc e\nq four,doc f\n"
ALL_PAIRS = [("q four", "doc e"), ("q four", "doc f"), ("q one", "doc a"), ("q one", "doc b"),
             ("q three", "doc d"), ("q two", "doc c")]


def rows(dataset: datasets.Dataset, *columns: str) -> list[tuple]:
    return sorted(zip(*(dataset[c] for c in columns)))


def test_pairs_are_each_document_with_its_query(tmp_path):
    out = run_prepare(tmp_path, PAIRS, "--layout", "pairs", "--split", "train=0.5,test=0.5")
    whole = pipelines.sentence_pairs(str(out))
    assert whole.features == datasets.Features({"anchor": datasets.Value("string"),
                                                "positive": datasets.Value("string")})
    assert rows(whole, "anchor", "positive") == ALL_PAIRS
    train, test = (pipelines.sentence_pairs(str(out), split=name) for name in ("train", "test"))
    assert train.num_rows and test.num_rows
    assert sorted(rows(train, "anchor", "positive") + rows(test, "anchor", "positive")) == ALL_PAIRS


def test_image_queries_pair_with_their_documents_by_uri(tmp_path):
    (tmp_path / "img").mkdir()
    for name in ("hopper.jpg", "hopper.png", "flower.jpg", "flower2.jpg"):
        shutil.copyfile(TEST_DATA / "images" / name, tmp_path / "img" / name)
    csv = tmp_path / "pairs.csv"
    csv.write_text("img/hopper.jpg,img/hopper.png\nimg/flower.jpg,img/flower2.jpg\n")
    out = run_prepare(tmp_path, csv, "--layout", "pairs", "--format", "parquet")
    pairs = pipelines.sentence_pairs(str(out))
    assert pairs.features == datasets.Features({"anchor": datasets.Image(), "positive": datasets.Image()})
    size = {path.name: Image.open(path).size for path in (tmp_path / "img").iterdir()}
    assert sorted((pair["anchor"].size, pair["positive"].size) for pair in pairs) == sorted(
        [(size["hopper.jpg"], size["hopper.png"]), (size["flower.jpg"], size["flower2.jpg"])])


def test_scores_are_two_sentences_and_their_score(tmp_path):
    out = run_prepare(tmp_path, "a cat sits,a cat sat,0.8\nit rains,the sun shines,0.1\n", "--layout", "scores")
    pairs = pipelines.sentence_pairs(str(out))
    assert list(pairs.features) == ["sentence1", "sentence2", "score"]
    assert rows(pairs, "sentence1", "sentence2", "score") == [("a cat sits", "a cat sat", 0.8),
                                                              ("it rains", "the sun shines", 0.1)]


def test_labels_are_class_ids_of_the_sorted_labels_alike_in_every_split(tmp_path):
    text = "".join(f"text {i},{label}\n" for i, label in enumerate(["b", "a", "c", "b", "a", "c", "b", "a"] * 3))
    out = run_prepare(tmp_path, text, "--is-labeled", "--split", "train=0.5,test=0.5", "--split-by", "document")
    table = pipelines.load_table(str(out))
    label_of = dict(zip(table.column("text").to_pylist(), table.column("label").to_pylist()))
    for split in ("train", "test"):
        labeled = pipelines.sentence_pairs(str(out), split=split)
        assert list(labeled.features) == ["text", "label"]
        assert labeled.features["label"].names == ["a", "b", "c"]
        assert labeled.num_rows > 0
        assert [labeled.features["label"].int2str(i) for i in labeled["label"]] == [label_of[t] for t in labeled["text"]]


def test_labeled_images_are_an_image_column(split_images):
    labeled = pipelines.sentence_pairs(str(split_images), split="train")
    assert labeled.features["image"] == datasets.Image()
    assert all(isinstance(image, Image.Image) for image in labeled["image"])
    assert labeled.num_rows == pipelines.load_manifest(str(split_images))["splits"]["per_split"]["train"]["documents"]


def test_clip_pairs_are_the_text_and_the_image(tmp_path):
    out = run_prepare(tmp_path, ROOT / "examples" / "clip.csv", "--format", "parquet")
    pairs = pipelines.sentence_pairs(str(out))
    assert pairs.features == datasets.Features({"anchor": datasets.Value("string"), "positive": datasets.Image()})
    assert sorted(pairs["anchor"])[0] == "A black and white portrait of Grace Hopper."
    assert all(isinstance(image, Image.Image) for image in pairs["positive"]) and pairs.num_rows == 4


def test_what_has_no_columns_to_train_on_is_a_value_error(tmp_path):
    out = run_prepare(tmp_path, "a,b\nc,d\n", "--layout", "values", "--format", "parquet")
    with pytest.raises(ValueError, match="a values dataset has no pairs, scores or labels"):
        pipelines.sentence_pairs(str(out))
    labeled = run_prepare(tmp_path, "a,x\nb,y\n", "--is-labeled", "--format", "parquet")
    with pytest.raises(UnknownSplit):
        pipelines.sentence_pairs(str(labeled), split="train")
