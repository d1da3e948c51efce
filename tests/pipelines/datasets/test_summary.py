"""`finetune-etl summary`: its figures against the manifest and against the Parquet files read with pyarrow,
splits and duplicates included."""
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import pipelines
from conftest import ROOT, run_prepare
from pipelines.cli import main
from pipelines.datasets.load import load_manifest


EXAMPLES = ROOT / "examples"
# seed-labeled.csv plus a row with a field too many and two with an empty label.
BAD_LABELED_ROWS = "one, two, three\nno label,\nnor this one, \n"
POINTS = 256


def summary_json(capsys, url: str, *args: str) -> dict:
    capsys.readouterr()
    assert main(["summary", url, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def parquet(out, kind: str) -> pa.Table:
    """Every column of every Parquet shard of one kind, read directly."""
    return pa.concat_tables(pq.read_table(p) for p in sorted(Path(out, kind).glob("*.parquet")))


def stats(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"min": values.min(), "median": np.median(values), "max": values.max()}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict:
    """Prepared datasets of the bundled examples: labeled text with dead letters, scored pairs with one
    (in several shards), CLIP text-image pairs, and labeled meshes."""
    tmp = tmp_path_factory.mktemp("summary")
    labeled = (EXAMPLES / "seed-labeled.csv").read_text(encoding="utf-8") + BAD_LABELED_ROWS
    scores = (EXAMPLES / "seed-scores.csv").read_text(encoding="utf-8") + "too, high, 1.5\n"
    return {
        "labeled": run_prepare(tmp, labeled, "--is-labeled"),
        "scores": run_prepare(tmp, scores, "--layout", "scores", "--shard-rows", "2"),  # several shards
        "clip": run_prepare(tmp, EXAMPLES / "clip.csv"),
        "meshes": run_prepare(tmp, EXAMPLES / "labeled-meshes.csv", "--is-labeled", "--point-cloud-size", str(POINTS)),
    }


@pytest.mark.parametrize("name", ["labeled", "scores", "clip", "meshes"])
def test_counts_match_manifest_and_parquet(datasets, capsys, name):
    out = datasets[name]
    s = summary_json(capsys, str(out))
    manifest = load_manifest(str(out))
    docs, dead = parquet(out, "documents"), parquet(out, "dead_letters")
    assert s["run_id"] == manifest["run_id"] and s["layout"] == manifest["layout"] and s["counts"] == manifest["counts"]
    assert s["documents"]["total"] == docs.num_rows == manifest["counts"]["documents_written"]
    assert s["documents"]["by_modality"] == dict(Counter(docs.column("modality").to_pylist()))
    assert s["dead_letters"]["total"] == dead.num_rows == manifest["counts"].get("dead_letters", 0)
    assert s["dead_letters"]["by_stage"] == dict(Counter(dead.column("stage").to_pylist()))
    groups = Counter(zip(dead.column("stage").to_pylist(), dead.column("reason_class").to_pylist()))
    assert {(g["stage"], g["reason_class"]): g["count"] for g in s["dead_letters"]["top"]} == dict(groups)
    for kind in ("documents", "dead_letters"):
        shard = s["shards"][kind]
        assert shard["rows"] == shard["rows_in_files"] == parquet(out, kind).num_rows
        assert shard["bytes"] == sum(p.stat().st_size for p in Path(out, kind).glob("*.parquet"))
    assert s["inputs"][0]["url"] == manifest["inputs"][0]["url"] and s["options"] == manifest["options"]
    assert s["reconciliation"]["reconciled"] and all(c["holds"] for c in s["checks"])
    assert len(s["reconciliation"]["equations"]) == 2 and all(e["holds"] for e in s["reconciliation"]["equations"])


def test_labels_and_dead_letter_examples(datasets, capsys):
    out = datasets["labeled"]
    s = summary_json(capsys, str(out), "--top", "2")
    labels = Counter(parquet(out, "documents").column("label").to_pylist())
    assert s["labels"]["count"] == len(labels)
    assert s["labels"]["per_label"] == stats(list(labels.values()))
    largest = sorted(labels.items(), key=lambda item: (-item[1], item[0]))[:2]
    assert [(x["label"], x["documents"]) for x in s["labels"]["largest"]] == largest
    top = s["dead_letters"]["top"]
    assert [(g["stage"], g["reason_class"], g["count"]) for g in top] == [("layout", "empty_value", 2), ("read", "field_count", 1)]
    lines = len((EXAMPLES / "seed-labeled.csv").read_text(encoding="utf-8").splitlines())
    assert top[0]["example"]["source_row"] == lines + 2 and top[0]["example"]["reason"] == "the label (column 2) is empty"
    assert top[1]["example"]["source_row"] == lines + 1
    assert s["scores"] is None and s["images"] is None and s["meshes"] is None


def test_score_histogram(datasets, capsys):
    out = datasets["scores"]
    s = summary_json(capsys, str(out))
    scores = parquet(out, "documents").column("score").to_numpy()
    counts, _ = np.histogram(scores, bins=10, range=(0, 1))
    assert [b["documents"] for b in s["scores"]["histogram"]] == counts.tolist()
    assert [(b["low"], b["high"]) for b in s["scores"]["histogram"]][::9] == [(0.0, 0.1), (0.9, 1.0)]
    assert s["scores"]["count"] == len(scores) and s["scores"]["max"] == scores.max()
    assert s["documents"]["pairs"] == {"text+text": len(scores)}
    assert s["shards"]["documents"]["files"] == len(list(Path(out, "documents").glob("*.parquet"))) > 1
    assert [(g["stage"], g["reason_class"]) for g in s["dead_letters"]["top"]] == [("layout", "score")]
    assert s["labels"] is None


def test_clip_images(datasets, capsys):
    out = datasets["clip"]
    s = summary_json(capsys, str(out))
    chunks = pc.list_flatten(parquet(out, "documents").column("chunks").combine_chunks())
    images = chunks.filter(pc.equal(chunks.field("modality"), "image"))
    assert s["clip"] is True and s["documents"]["pairs"] == {"text+image": len(images)}
    assert s["images"]["count"] == len(images)
    assert s["images"]["width"] == stats(images.field("width").to_numpy())
    assert s["images"]["height"] == stats(images.field("height").to_numpy())
    assert s["images"]["mime_types"] == dict(Counter(images.field("mime_type").to_pylist()))


def test_meshes(datasets, capsys):
    out = datasets["meshes"]
    s = summary_json(capsys, str(out))
    clouds = parquet(out, "documents").column("point_cloud").combine_chunks()
    assert s["meshes"]["count"] == len(clouds) == s["documents"]["by_modality"]["mesh"]
    assert set(pc.list_value_length(clouds).to_pylist()) == {s["meshes"]["points_per_cloud"]} == {POINTS}


def test_terminal_report_has_the_key_figures(datasets, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")  # rich's width when stdout is not a terminal
    out = datasets["labeled"]
    s = summary_json(capsys, str(out))
    assert main(["summary", str(out)]) == 0
    text = capsys.readouterr().out
    assert s["run_id"] in text and "layout              labeled" in text
    assert f"documents           {s['documents']['total']}" in text
    assert f"Labels: {s['labels']['count']}," in text
    assert "Dead letters: 3 (layout 2, read 1)" in text and "field_count" in text
    assert "counts add up       yes" in text and "NO" not in text


def test_a_docarray_only_dataset_reads_as_its_parquet_twin(datasets, tmp_path, capsys):
    """Without Parquet shards the documents come from the .docs files; the figures are the same."""
    out = run_prepare(tmp_path, EXAMPLES / "clip.csv", "--format", "docarray")
    s, twin = summary_json(capsys, str(out)), summary_json(capsys, str(datasets["clip"]))
    assert s["shards"]["documents"]["files"] == 0 and s["shards"]["docarray"]["files"] > 0
    assert all(s[key] == twin[key] for key in ("documents", "labels", "scores", "images", "meshes"))


def test_summary_imports_pyarrow_but_not_docarray_pandas_or_beam(datasets, near_texts):
    """`finetune-etl summary` reads Parquet with pyarrow alone: importing docarray or pandas (which pyarrow
    imports the first time it converts a Python value, hands numpy an array or groups a table) took longer
    than reading a million documents. (Datasets without --split: its crossing checks group tables.)"""
    script = ("import contextlib, io, sys\nfrom pipelines.cli import main\n"
              f"for out in {[str(out) for out in [*datasets.values(), near_texts]]!r}:\n"
              "    with contextlib.redirect_stdout(io.StringIO()):\n"
              "        assert main(['summary', out]) == main(['summary', out, '--json']) == 0\n"
              "print([m for m in ('apache_beam', 'docarray', 'pandas', 'PIL', 'trimesh') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.splitlines() == ["[]"]


def test_missing_dataset_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "nothing")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("finetune-etl: error: ")
    assert "holds no complete dataset" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_summary_of_a_dataset_on_gcs(gcs, tmp_path, capsys):
    source = tmp_path / "train.csv"
    source.write_text("Hello!,greeting\n\"Hi, there!\",greeting\nBonjour,french\ntoo,many,fields\n", encoding="utf-8")
    url = gcs.url("datasets/greetings")
    assert main(["prepare", "--input", str(source), "--output", url, "--is-labeled"]) == 0
    s = summary_json(capsys, url)
    (shard,) = load_manifest(url)["shards"]["documents"]  # on object stores: in the run's version
    docs = pq.read_table(gcs.fs.open(f"{gcs.bucket}/datasets/greetings/{shard['path']}", "rb"))
    assert s["url"] == url and s["documents"]["total"] == docs.num_rows == 3
    assert [(x["label"], x["documents"]) for x in s["labels"]["largest"]] == [("greeting", 2), ("french", 1)]
    assert s["dead_letters"]["by_stage"] == {"read": 1} and all(c["holds"] for c in s["checks"])


def failing(summary: dict) -> list[str]:
    return [c["check"] for c in summary["checks"] if not c["holds"]]


def terminal(capsys, monkeypatch, url: str) -> str:
    monkeypatch.setenv("COLUMNS", "160")
    capsys.readouterr()
    assert main(["summary", url]) == 0
    return capsys.readouterr().out


LONG_TEXT = "Hello there, this greeting goes on and on, far longer than any example the summary shows whole."


@pytest.fixture(scope="module")
def near_texts(datasets, stand_in, tmp_path_factory) -> Path:
    """The labeled dataset (no --split) with one near-duplicate cluster of texts: two documents and a removed
    long text (written by the stand-in for the pipeline, see conftest)."""
    out = stand_in.copy(datasets["labeled"], tmp_path_factory.mktemp("near-texts"), "dataset")
    kept, other = pipelines.load_table(str(out)).sort_by("id").slice(0, 2).to_pylist()
    rows = [stand_in.near_row(kept, kept["id"], 0.96), stand_in.near_row(other, kept["id"], 0.96),
            {"id": "0123456789abcdef", "kept_id": kept["id"], "kind": "near", "similarity": 0.9, "removed": True,
             "modality": "text", "text": LONG_TEXT}]
    stand_in.duplicates(out, rows, {kept["id"]: kept["id"], other["id"]: kept["id"]},
                        {"near_duplicate_clusters": 1, "near_duplicates_found": 3, "near_duplicates_removed": 1})
    return out


def test_duplicates_section_counts_the_duplicates_files(clustered, capsys, monkeypatch):
    s = summary_json(capsys, str(clustered.out))
    rows = parquet(clustered.out, "duplicates").to_pylist()
    near = [r for r in rows if r["kind"] == "near"]
    assert s["duplicates"] | {"largest_clusters": None} == {
        "exact_removed": 0, "near_clusters": len({r["kept_id"] for r in near}), "near_found": len(near),
        "near_removed": sum(r["removed"] for r in near), "largest_clusters": None} == {
        "exact_removed": 0, "near_clusters": 2, "near_found": 6, "near_removed": 2, "largest_clusters": None}
    hopper, flower = clustered.id("hopper.jpg"), clustered.id("flower.jpg")
    largest = s["duplicates"]["largest_clusters"]
    assert [(c["kept_id"], c["kind"], c["size"]) for c in largest] == sorted([(hopper, "near", 3), (flower, "near", 3)])
    by_kept = {c["kept_id"]: c for c in largest}
    assert by_kept[hopper]["similarity"] == {"min": 0.93, "max": 0.99}
    assert [(e["uri"], e["removed"]) for e in by_kept[hopper]["examples"]] == [
        ("img/hopper.jpg", False), ("img/hopper-copy.jpg", False), ("removed/hopper_gray.jpg", True)]
    assert s["splits"]["duplicate_groups_in_two_splits"] == 0 and failing(s) == []
    assert {c["check"] for c in s["checks"]} >= {
        "near-duplicate clusters found in two splits", "exact duplicates in the files = duplicates_removed - query_repeats",
        "near-duplicate clusters in the files = counts.near_duplicate_clusters",
        "documents in near-duplicate clusters in the files = counts.near_duplicates_found",
        "near duplicates removed in the files = counts.near_duplicates_removed",
        "duplicates rows in the Parquet footers = the manifest's shard rows"}
    text = terminal(capsys, monkeypatch, str(clustered.out))
    assert "Duplicates: 0 exact removed; 2 near-duplicate clusters of 6 documents, 2 removed" in text
    lines = text.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith(hopper))
    assert lines[at].split()[1:] == ["near", "3", "0.930", "-", "0.990", "img/hopper.jpg", "(kept)"]
    assert [line.strip() for line in lines[at + 1:at + 3]] == ["img/hopper-copy.jpg", "removed/hopper_gray.jpg (removed)"]
    assert "in two splits           0 near-duplicate clusters" in text and "counts add up       yes" in text


def test_a_near_duplicate_cluster_across_splits_is_found(clustered, stand_in, tmp_path, capsys, monkeypatch):
    """A document of the other split joins hopper's cluster: the check finds 1 cluster in two splits (the
    manifest's counts agree with the files, so that check alone fails) and the verdict says NO."""
    out = stand_in.copy(clustered.out, tmp_path, "crossing")
    hopper = clustered.documents["hopper.jpg"]
    elsewhere = next(doc for doc in clustered.documents.values() if doc["split"] != hopper["split"])
    stand_in.duplicates(out, [stand_in.near_row(elsewhere, hopper["id"], 0.9)], {elsewhere["id"]: hopper["id"]},
                        {"near_duplicates_found": 7})
    s = summary_json(capsys, str(out))
    assert s["splits"]["duplicate_groups_in_two_splits"] == 1
    assert s["splits"]["content_in_two_splits"] == s["splits"]["labels_in_two_splits"] == 0
    assert failing(s) == ["near-duplicate clusters found in two splits"]
    assert s["duplicates"]["largest_clusters"][0]["kept_id"] == hopper["id"]
    assert s["duplicates"]["largest_clusters"][0]["size"] == 4
    text = terminal(capsys, monkeypatch, str(out))
    assert "in two splits           1 near-duplicate cluster " in text and "counts add up       NO" in text


def test_text_clusters_show_their_texts_cut_short(near_texts, capsys, monkeypatch):
    s = summary_json(capsys, str(near_texts))
    (cluster,) = s["duplicates"]["largest_clusters"]
    removed = cluster["examples"][-1]
    assert removed["removed"] and removed["text"].endswith("...") and len(removed["text"]) == 60
    assert LONG_TEXT.startswith(removed["text"][:-3])
    assert s["splits"] is None and failing(s) == []
    assert f"{removed['text']} (removed)" in terminal(capsys, monkeypatch, str(near_texts))


def test_exact_duplicates_removed_are_counted_and_checked(stand_in, tmp_path, capsys):
    """The same photo under two names in one label: the run removes the copy and lists it; the summary counts
    it from the files and finds it agrees with the manifest, and finds a row too many (added by hand) does not."""
    (tmp_path / "img").mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copyfile(ROOT / "tests" / "data" / "images" / "hopper.jpg", tmp_path / "img" / name)
    (tmp_path / "photos.csv").write_text("img/a.jpg,hopper\nimg/b.jpg,hopper\n")
    out = run_prepare(tmp_path, tmp_path / "photos.csv", "--is-labeled", "--format", "parquet")
    assert load_manifest(str(out))["counts"]["duplicates_removed"] == 1
    (kept,) = pipelines.load_table(str(out)).to_pylist()
    s = summary_json(capsys, str(out))
    assert s["duplicates"]["exact_removed"] == 1 and s["duplicates"]["near_clusters"] == 0
    (cluster,) = [c for c in s["duplicates"]["largest_clusters"] if c["kept_id"] == kept["id"]]
    assert cluster["kind"] == "exact" and cluster["similarity"] == {"min": 1.0, "max": 1.0}
    assert [(e["id"], e["removed"], e["uri"]) for e in cluster["examples"]] == [(None, True, "img/b.jpg")]
    assert failing(s) == []
    one_more = {"kept_id": kept["id"], "kind": "exact", "similarity": 1.0, "removed": True, "uri": "img/c.jpg"}
    stand_in.duplicates(out, [one_more], {})
    assert failing(summary_json(capsys, str(out))) == ["exact duplicates in the files = duplicates_removed - query_repeats"]


def test_a_query_named_by_several_rows_is_counted_not_listed(tmp_path, capsys):
    """Query-document pairs repeat a query once per row: one document, counted in query_repeats and not
    listed; the check still holds."""
    out = run_prepare(tmp_path, EXAMPLES / "seed-pairs.csv", "--layout", "pairs", "--format", "parquet")
    counts = load_manifest(str(out))["counts"]
    assert counts["duplicates_removed"] == counts["query_repeats"] >= 1
    s = summary_json(capsys, str(out))
    assert s["duplicates"]["exact_removed"] == 0 and failing(s) == []


def test_a_dataset_from_before_duplicates_shows_none(old_split_images, capsys, monkeypatch):
    s = summary_json(capsys, str(old_split_images))
    assert s["duplicates"] is None and s["splits"]["duplicate_groups_in_two_splits"] is None
    assert "duplicates" not in s["shards"] and failing(s) == []
    assert not any("duplicate" in c["check"] for c in s["checks"])
    text = terminal(capsys, monkeypatch, str(old_split_images))
    assert "Duplicates" not in text and "near-duplicate" not in text and "counts add up       yes" in text
