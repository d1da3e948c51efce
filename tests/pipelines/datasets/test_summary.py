"""`finetune-etl summary`: its figures against the manifest and against the Parquet files read with pyarrow."""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

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


def test_summary_imports_pyarrow_but_not_docarray_pandas_or_beam(datasets):
    """`finetune-etl summary` reads Parquet with pyarrow alone: importing docarray or pandas (which pyarrow
    imports the first time it converts a Python value, hands numpy an array or groups a table) took longer
    than reading a million documents."""
    script = ("import contextlib, io, sys\nfrom pipelines.cli import main\n"
              f"for out in {[str(out) for out in datasets.values()]!r}:\n"
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
