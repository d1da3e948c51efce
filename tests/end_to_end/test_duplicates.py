"""Duplicates, end to end: the same photo or mesh file under two URIs is one document (exact, by its bytes); with
--near-duplicates, near-identical texts, images and meshes are clustered (duplicate_group), listed in
duplicates/, dropped with --drop-near-duplicates, and kept in one split. Checked from the files."""
import collections
import json
import csv
import io
import random
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

import pipelines
from conftest import ROOT, assert_reconciled, run_prepare, write_csv

DATA = ROOT / "tests" / "data"
QUORA = ROOT / "examples" / "quora-labeled.csv"
PHOTOS = ["05978.jpg", "05979.jpg", "05980.jpg", "05981.jpg", "flower.jpg", "flower2.jpg", "123_456.jpg",
          "208_495.jpg", "389_535.jpg", "524_316.jpg"]


def documents(out: Path) -> list[dict]:
    return pipelines.load_table(str(out)).drop_columns(["blob", "point_cloud"]).to_pylist()


def duplicates(out: Path) -> list[dict]:
    manifest = pipelines.load_manifest(str(out))
    return [row for shard in manifest["shards"]["duplicates"] for row in pq.read_table(out / shard["path"]).to_pylist()]


def clusters(docs: list[dict]) -> dict:
    """{kept id: sorted ids of its cluster} from the documents' duplicate_group column."""
    found = collections.defaultdict(list)
    for doc in docs:
        if doc["duplicate_group"] is not None:
            found[doc["duplicate_group"]].append(doc["id"])
    return {kept: sorted(ids) for kept, ids in found.items()}


def copies_of_photos(folder: Path) -> list[tuple[str, str]]:
    """Each photo and its near copies (half size, JPEG quality 50, 2.5% cropped off each side), written to
    folder; -> (relative path, the photo it copies)."""
    rows = []
    for name in PHOTOS:
        image = Image.open(DATA / "images" / name).convert("RGB")
        w, h = image.size
        variants = {"orig.png": image, "half.jpg": image.resize((w // 2, h // 2)), "q50.jpg": image,
                    "crop.png": image.crop((w // 40, h // 40, w - w // 40, h - h // 40))}
        for suffix, picture in variants.items():
            path = folder / "photos" / f"{Path(name).stem}-{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            picture.save(path, quality=50) if suffix.endswith(".jpg") else picture.save(path)
            rows.append((f"photos/{path.name}", name))
    return rows


def test_the_same_photo_under_two_uris_in_one_label_is_one_document(tmp_path):
    (tmp_path / "img").mkdir()
    for name, source in (("a.jpg", "hopper.jpg"), ("b.jpg", "hopper.jpg"), ("c.jpg", "flower.jpg")):
        shutil.copy(DATA / "images" / source, tmp_path / "img" / name)
    source = write_csv(tmp_path, "img/a.jpg,cat\nimg/b.jpg,cat\nimg/c.jpg,cat\nimg/b.jpg,dog\n", "in.csv")
    out = run_prepare(tmp_path, source, "--is-labeled")
    docs = documents(out)
    assert sorted((d["uri"], d["label"]) for d in docs) == [("img/a.jpg", "cat"), ("img/b.jpg", "dog"), ("img/c.jpg", "cat")]
    kept = next(d["id"] for d in docs if d["uri"] == "img/a.jpg")
    (record,) = duplicates(out)
    assert record | {"source_file": None} == {
        "id": None, "kept_id": kept, "kind": "exact", "similarity": 1.0, "removed": True, "modality": "image",
        "label": None, "text": None, "uri": "img/b.jpg", "source_file": None, "source_row": 2}
    assert assert_reconciled(out)["duplicates_removed"] == 1


def test_the_same_mesh_file_under_two_uris_in_one_label_is_one_document(tmp_path):
    """A mesh's points are seeded by its bytes: copies have the same cloud and are one document; another
    file, or the same file under another label, is its own document."""
    (tmp_path / "m").mkdir()
    for name, source in (("a.off", "ballA.off"), ("b.off", "ballA.off"), ("c.off", "ballB.off")):
        shutil.copy(DATA / "meshes" / source, tmp_path / "m" / name)
    (tmp_path / "m" / "d.off").write_bytes((DATA / "meshes" / "ballA.off").read_bytes() + b"\n")  # one more byte
    source = write_csv(tmp_path, "m/a.off,ball\nm/b.off,ball\nm/c.off,ball\nm/d.off,ball\nm/b.off,sphere\n", "in.csv")
    out = run_prepare(tmp_path, source, "--is-labeled")
    table = pipelines.load_table(str(out))
    docs = {(d["uri"], d["label"]): d for d in table.to_pylist()}
    assert sorted(docs) == [("m/a.off", "ball"), ("m/b.off", "sphere"), ("m/c.off", "ball"), ("m/d.off", "ball")]
    assert docs[("m/a.off", "ball")]["point_cloud"] == docs[("m/b.off", "sphere")]["point_cloud"]  # same bytes
    assert docs[("m/a.off", "ball")]["point_cloud"] != docs[("m/d.off", "ball")]["point_cloud"]  # another file
    (record,) = duplicates(out)
    assert (record["kept_id"], record["kind"], record["modality"], record["uri"], record["source_row"]) == (
        docs[("m/a.off", "ball")]["id"], "exact", "mesh", "m/b.off", 2)
    assert assert_reconciled(out)["duplicates_removed"] == 1


def test_repeated_text_rows_of_a_labeled_file_are_still_kept(tmp_path):
    """Only loaded media repeats are removed in labeled rows: text repeats keep their -k ids, as before."""
    out = run_prepare(tmp_path, "a cat,animals\na cat,animals\na dog,animals\n", "--is-labeled")
    ids = sorted(d["id"] for d in documents(out))
    assert len(ids) == 3 and sum(i.endswith("-1") for i in ids) == 1
    assert duplicates(out) == [] and "duplicates_removed" not in assert_reconciled(out)


def test_near_duplicate_texts_are_clustered_listed_and_dropped_on_request(tmp_path):
    questions = [row[0] for row in csv.reader(io.StringIO(QUORA.read_text(encoding="utf-8")))][:200]
    long = [q for q in questions if len(q.split()) >= 12][:20]
    variants = [q.upper() for q in long[:5]] + [q.replace("?", " ?!") for q in long[5:10]] + \
               ["  ".join(q.split()) for q in long[10:15]]
    rows = [[q, f"label {i}"] for i, q in enumerate(questions)] + [[v, "copies"] for v in variants]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    source = write_csv(tmp_path, text.getvalue(), "questions.csv")

    out = run_prepare(tmp_path, source, "--is-labeled", "--near-duplicates")
    docs = documents(out)
    found = clusters(docs)
    by_id = {d["id"]: d for d in docs}
    copied = {" ".join(v.lower().replace("?", " ").replace("!", " ").split()) for v in variants}
    for kept, ids in found.items():
        assert kept == min(ids)
        assert len({" ".join(by_id[i]["text"].lower().replace("?", " ").replace("!", " ").split()) for i in ids}) >= 1
    clustered_texts = {by_id[i]["text"] for ids in found.values() for i in ids}
    assert set(variants) <= clustered_texts  # every copy found (recall on these edits)
    assert len(found) >= len(copied)
    listed = duplicates(out)
    assert {r["id"] for r in listed} == {i for ids in found.values() for i in ids}
    assert all(r["kind"] == "near" and not r["removed"] and r["similarity"] >= 0.9 for r in listed)
    counts = assert_reconciled(out)
    assert counts["near_duplicates_found"] == len(listed) and counts["near_duplicate_clusters"] == len(found)

    dropped = run_prepare(tmp_path, source, "--is-labeled", "--near-duplicates", "--drop-near-duplicates")
    remaining = documents(dropped)
    assert len(remaining) == len(docs) - sum(len(ids) - 1 for ids in found.values())
    assert set(clusters(remaining)) == set(found) and all(len(ids) == 1 for ids in clusters(remaining).values())
    removed = [r for r in duplicates(dropped) if r["removed"]]
    assert len(removed) == assert_reconciled(dropped)["near_duplicates_removed"] == len(docs) - len(remaining)


def test_texts_that_all_normalise_to_one_form_are_one_cluster_among_real_questions(tmp_path):
    """1,500 distinct texts of punctuation only (each normalises to '', the empty form: past the window of a
    long run of candidates) among real questions: one cluster of exactly them, kept as its smallest id, each
    listed at similarity 1.0; the questions are untouched by it."""
    questions = [row[0] for row in csv.reader(io.StringIO(QUORA.read_text(encoding="utf-8")))][:300]
    rng = random.Random(7)
    marks = set()
    while len(marks) < 1500:
        marks.add("".join(rng.choice("!?.,;:-()[]#*/") for _ in range(rng.randint(3, 9))))
    rows = [[q, f"label {i % 30}"] for i, q in enumerate(questions)] + [[m, f"label {i % 30}"] for i, m in
                                                                          enumerate(sorted(marks))]
    rng.shuffle(rows)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    out = run_prepare(tmp_path, write_csv(tmp_path, text.getvalue(), "marks.csv"), "--is-labeled", "--near-duplicates")
    docs = documents(out)
    found = clusters(docs)
    by_id = {d["id"]: d for d in docs}
    (marked,) = [ids for ids in found.values() if by_id[ids[0]]["text"] in marks]
    assert {by_id[i]["text"] for i in marked} == marks and len(marked) == 1500
    assert all(by_id[i]["text"] not in marks for ids in found.values() if ids is not marked for i in ids)
    listed = {r["id"]: r for r in duplicates(out)}
    assert all(listed[i]["kept_id"] == min(marked) and listed[i]["similarity"] == 1.0 for i in marked)
    assert assert_reconciled(out)["near_duplicates_found"] == len(listed)


def test_near_duplicate_photos_are_found_and_distinct_photos_are_not(tmp_path):
    rows = copies_of_photos(tmp_path)
    source = write_csv(tmp_path, "".join(f"{path},{i}\n" for i, (path, _) in enumerate(rows)), "photos.csv")
    out = run_prepare(tmp_path, source, "--is-labeled", "--near-duplicates")
    docs = documents(out)
    photo_of = {f"photos/{Path(p).name}": original for p, original in rows}
    groups = collections.defaultdict(set)
    for doc in docs:
        if doc["duplicate_group"] is not None:
            groups[doc["duplicate_group"]].add(photo_of[doc["uri"]])
    assert all(len(originals) == 1 for originals in groups.values())  # no cluster mixes two photos (precision)
    assert len(groups) == len(PHOTOS)  # each photo's copies are one cluster
    missed = sorted(d["uri"] for d in docs if d["duplicate_group"] is None)
    # Resized and re-encoded copies are always found; a crop moves the hash most (README: recall by edit).
    assert all(uri.endswith("-crop.png") for uri in missed) and len(missed) <= 2, missed
    assert_reconciled(out)


def test_near_duplicates_keep_a_cluster_in_one_split_and_the_result_ignores_input_order(tmp_path):
    rows = copies_of_photos(tmp_path)
    lines = [f"{path},{i}\n" for i, (path, _) in enumerate(rows)]
    args = ("--is-labeled", "--near-duplicates", "--split", "train=0.5,test=0.5", "--split-by", "document")
    first = run_prepare(tmp_path, write_csv(tmp_path, "".join(lines), "a.csv"), *args)
    random.Random(3).shuffle(lines)
    second = run_prepare(tmp_path, write_csv(tmp_path, "".join(lines), "b.csv"), *args)
    docs = documents(first)
    split_of_cluster = collections.defaultdict(set)
    for doc in docs:
        split_of_cluster[doc["duplicate_group"]].add(doc["split"])
    assert all(len(splits) == 1 for splits in split_of_cluster.values())
    assert len({s for splits in split_of_cluster.values() for s in splits}) == 2  # both splits are used
    key = lambda d: d["uri"]
    assert [(d["id"], d["duplicate_group"], d["split"]) for d in sorted(docs, key=key)] == \
           [(d["id"], d["duplicate_group"], d["split"]) for d in sorted(documents(second), key=key)]


def test_the_same_mesh_under_two_names_is_a_near_duplicate_and_other_meshes_are_not(tmp_path):
    (tmp_path / "m").mkdir()
    names = {"bunny.ply": "bunny.ply", "bunny-copy.ply": "bunny.ply", "fandisk.obj": "fandisk.obj",
             "box.obj": "box.obj", "featuretype.ply": "featuretype.ply"}
    for name, source in names.items():
        shutil.copy(DATA / "meshes" / source, tmp_path / "m" / name)
    source = write_csv(tmp_path, "".join(f"m/{n},{n}\n" for n in names), "meshes.csv")
    out = run_prepare(tmp_path, source, "--is-labeled", "--near-duplicates")
    found = [sorted(Path(d["uri"]).name for d in documents(out) if d["duplicate_group"] == kept)
             for kept in clusters(documents(out))]
    assert found == [["bunny-copy.ply", "bunny.ply"]]


def test_summary_and_sprites_read_a_real_run_with_dropped_near_duplicates(tmp_path, capsys):
    """The dataset commands on what the pipeline wrote: the summary's duplicate counts agree with the files
    and its checks pass; sprites draws a sheet per cluster, removed members from their files."""
    from pipelines.cli import main

    rows = copies_of_photos(tmp_path)
    source = write_csv(tmp_path, "".join(f"{path},{i % 3}\n" for i, (path, _) in enumerate(rows)), "photos.csv")
    out = run_prepare(tmp_path, source, "--is-labeled", "--near-duplicates", "--drop-near-duplicates",
                      "--split", "train=0.5,test=0.5", "--split-by", "document", "--format", "parquet")
    counts = assert_reconciled(out)
    capsys.readouterr()
    assert main(["summary", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["duplicates"]["near_clusters"] == counts["near_duplicate_clusters"] == len(PHOTOS)
    assert summary["duplicates"]["near_found"] == counts["near_duplicates_found"]
    assert summary["duplicates"]["near_removed"] == counts["near_duplicates_removed"] > 0
    assert summary["splits"]["duplicate_groups_in_two_splits"] == 0
    assert main(["sprites", str(out), "--duplicates", "--output", str(tmp_path / "near.png"), "--tile", "48"]) == 0
    assert len(list(tmp_path.glob("near-*.png"))) == len(PHOTOS)


def test_dropping_near_duplicate_queries_of_pairs_is_refused_in_one_line(tmp_path, capsys):
    run_prepare(tmp_path, "How old are you?,What is your age?\nHow old are you ?,Your age?\n", "--layout", "pairs",
                "--near-duplicates", "--drop-near-duplicates", expect_rc=2)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("finetune-etl: error: --drop-near-duplicates would drop queries")
