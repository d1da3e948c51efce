"""A dataset means the same on another machine: relative media paths are kept as the CSV wrote them
(relative to the inputs' common folder, recorded as the manifest's `media_root`), so ids, labels, uris and
point clouds do not depend on where the files sit; media dead letters keep the CSV row they came from."""
import shutil
from pathlib import Path

import pipelines
from conftest import TEST_DATA, assert_reconciled, run_prepare
from pipelines.cli import main

IMAGES, MESHES = TEST_DATA / "images", TEST_DATA / "meshes"


def project(folder: Path) -> Path:
    """A folder holding a labeled CSV and the images and mesh it names by relative paths; returns the CSV."""
    (folder / "img").mkdir(parents=True)
    (folder / "shapes").mkdir()
    for name in ("hopper.jpg", "flower.jpg"):
        shutil.copy(IMAGES / name, folder / "img" / name)
    shutil.copy(MESHES / "suzanne.ply", folder / "shapes" / "suzanne.ply")
    csv = folder / "things.csv"
    csv.write_text("img/hopper.jpg,person\nimg/flower.jpg,plant\n./img/flower.jpg,flower\nimg/missing.jpg,ghost\n")
    (folder / "shapes.csv").write_text("shapes/suzanne.ply,monkey\n")
    return csv


def content(out: Path) -> list[dict]:
    """Every document without where its CSV sat (source_file), sorted by id."""
    table = pipelines.load_table(str(out)).drop_columns(["source_file"])
    return sorted(table.to_pylist(), key=lambda d: d["id"])


def test_the_same_files_in_two_places_give_the_same_dataset(tmp_path):
    first, second = project(tmp_path / "alice" / "work"), project(tmp_path / "bob" / "elsewhere" / "deep")
    outs = []
    for csv in (first, second):
        out = run_prepare(tmp_path, csv, "--is-labeled")
        outs.append(out)
        manifest = pipelines.load_manifest(str(out))
        assert manifest["media_root"] == str(csv.parent)
        assert_reconciled(out)
    assert content(outs[0]) == content(outs[1])
    docs = content(outs[0])
    assert sorted(d["uri"] for d in docs) == ["./img/flower.jpg", "img/flower.jpg", "img/hopper.jpg"]
    assert all(d["blob"] == (IMAGES / Path(d["uri"]).name).read_bytes() for d in docs)


def test_a_mesh_cloud_is_seeded_by_the_path_the_dataset_keeps(tmp_path):
    clouds = []
    for place in ("one", "two/three"):
        csv = project(tmp_path / place).parent / "shapes.csv"
        out = run_prepare(tmp_path, csv, "--is-labeled")
        (doc,) = pipelines.load_table(str(out)).to_pylist()
        assert doc["uri"] == "shapes/suzanne.ply" and len(doc["point_cloud"]) == 2048
        clouds.append(doc["point_cloud"])
    assert clouds[0] == clouds[1]


def test_csvs_in_two_folders_keep_their_folder_within_the_common_one(tmp_path):
    """Two CSVs naming `img/hopper.jpg` in their own folders: two files, two documents, each uri
    relative to the inputs' common folder (which the manifest records)."""
    a, b = project(tmp_path / "data" / "a"), project(tmp_path / "data" / "b")
    shutil.copy(IMAGES / "05978.jpg", b.parent / "img" / "hopper.jpg")  # same name, another picture
    out = tmp_path / "out"
    assert main(["prepare", "--input", str(a), "--input", str(b), "--output", str(out), "--is-labeled"]) == 0
    manifest = pipelines.load_manifest(str(out))
    assert manifest["media_root"] == str(tmp_path / "data")
    by_uri = {d["uri"]: d for d in pipelines.load_table(str(out)).to_pylist()}
    assert {"a/img/hopper.jpg", "b/img/hopper.jpg"} <= set(by_uri)
    assert by_uri["a/img/hopper.jpg"]["blob"] == (IMAGES / "hopper.jpg").read_bytes()
    assert by_uri["b/img/hopper.jpg"]["blob"] == (IMAGES / "05978.jpg").read_bytes()
    assert by_uri["a/img/hopper.jpg"]["id"] != by_uri["b/img/hopper.jpg"]["id"]
    assert_reconciled(out)


def test_image_query_pairs_are_labelled_by_the_path_the_csv_wrote(tmp_path):
    csv = project(tmp_path / "pairs").parent / "pairs.csv"
    csv.write_text("img/hopper.jpg,img/flower.jpg\nimg/hopper.jpg,img/hopper.jpg\n")
    out = run_prepare(tmp_path, csv, "--layout", "pairs")
    docs = pipelines.load_table(str(out)).to_pylist()
    assert sorted((d["uri"], d["label"]) for d in docs) == [
        ("img/flower.jpg", "img/hopper.jpg"), ("img/hopper.jpg", "img/hopper.jpg")]


def test_a_media_dead_letter_keeps_its_csv_row_and_names_the_file_it_read(tmp_path):
    csv = project(tmp_path / "p")
    out = run_prepare(tmp_path, csv, "--is-labeled")
    (dead,) = pipelines.load_dead_letters(str(out)).to_pylist()
    assert (dead["stage"], dead["reason_class"], dead["source_row"]) == ("media", "missing", 4)
    assert dead["raw"] == "img/missing.jpg,ghost"
    assert str(csv.parent / "img" / "missing.jpg") in dead["reason"]


def test_docarray_output_opens_with_relative_uris(tmp_path):
    """docarray reads the shards back with the uris as kept."""
    csv = project(tmp_path / "p")
    out = run_prepare(tmp_path, csv, "--is-labeled", "--format", "docarray")
    docs = pipelines.load_docs(str(out))
    assert sorted(d.uri for d in docs) == ["./img/flower.jpg", "img/flower.jpg", "img/hopper.jpg"]
    assert all(d.blob == (IMAGES / Path(d.uri).name).read_bytes() for d in docs)
