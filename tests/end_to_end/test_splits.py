"""--split: train/evaluation splits without leakage. Checked from the files a run writes, never from its
manifest alone: no label (where labels are kept whole), no identical content and no document crosses two
splits; fractions are met; the same input in another order, or on another runner, gives the same splits."""
import collections
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipelines
from conftest import ROOT, assert_reconciled, run_prepare, write_csv
from transforms.split.nodes import content_nodes, flat_content_nodes, label_hashes

QUORA = ROOT / "examples" / "quora-labeled.csv"  # Finetuner's labeled example: Quora duplicate-question clusters
FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
SPLIT = ["--split", "train=0.8,validation=0.1,test=0.1"]


def chained_pairs(seed: int = 7, queries: int = 1500) -> list[str]:
    """Query-document rows: each query has 1-4 documents of its own; every 50th query also names a
    document of the query before it (a chain that joins the two labels)."""
    rng = random.Random(seed)
    rows = []
    for q in range(queries):
        rows += [f"query {q},document {q}-{d}" for d in range(rng.randint(1, 4))]
        if q % 50 == 1:
            rows.append(f"query {q},document {q - 1}-0")
    return rows


def splits_of(out: Path) -> dict:
    """{split name: rows of its Parquet shards}, from the files the manifest lists."""
    manifest = pipelines.load_manifest(str(out))
    found = collections.defaultdict(list)
    for shard in manifest["shards"]["documents"]:
        assert Path(shard["path"]).name.startswith(shard["split"] + "-")
        for row in pq.read_table(out / shard["path"]).to_pylist():
            assert row["split"] == shard["split"]
            found[shard["split"]].append(row)
    return found


def crossings(found: dict, *keys) -> list:
    """The values of the given document fields (label, text, ...) found in more than one split."""
    where = collections.defaultdict(set)
    for name, rows in found.items():
        for row in rows:
            for key in keys:
                value = row[key] if key != "chunk_text" else tuple(c["text"] for c in row["chunks"])
                if key == "chunk_text":
                    for text in value:
                        where[(key, text)].add(name)
                elif value is not None:
                    where[(key, value)].add(name)
    return sorted(k for k, names in where.items() if len(names) > 1)


def achieved(found: dict) -> dict:
    total = sum(len(rows) for rows in found.values())
    return {name: len(found.get(name, [])) / total for name in FRACTIONS}


def assert_fractions(found: dict, within: float = 0.02) -> None:
    for name, share in achieved(found).items():
        assert abs(share - FRACTIONS[name]) <= within, (name, share)


def assert_manifest_counts_match_the_files(out: Path, found: dict) -> None:
    per_split = pipelines.load_manifest(str(out))["splits"]["per_split"]
    for name, rows in found.items():
        assert per_split[name]["documents"] == len(rows)
        assert per_split[name]["labels"] == len({r["label"] for r in rows if r["label"] is not None})
        assert per_split[name]["rows"] == len({(r["source_file"], r["source_row"]) for r in rows})
    assert [per_split[name]["fraction"] for name in FRACTIONS] == list(FRACTIONS.values())


def test_query_document_pairs_keep_queries_and_shared_documents_in_one_split(tmp_path):
    rows = chained_pairs()
    out = run_prepare(tmp_path, "\n".join(rows + rows[10:13]) + "\n", "--layout", "pairs", *SPLIT)  # 3 rows twice
    found = splits_of(out)
    assert set(found) == set(FRACTIONS)
    assert crossings(found, "label", "text") == []
    assert_fractions(found)
    assert_manifest_counts_match_the_files(out, found)
    chained = {row["label"] for rows in found.values() for row in rows if row["text"] == "document 0-0"}
    assert chained == {"query 0", "query 1"}  # the shared document joined its two queries
    counts = assert_reconciled(out)
    duplicates = pipelines.load_manifest(str(out))["shards"]["duplicates"]  # the split keeps the records
    # Each repeated row's document is listed; a query named by several rows is counted, not listed.
    assert sum(shard["rows"] for shard in duplicates) == counts["duplicates_removed"] - counts["query_repeats"] == 3


def test_labeled_rows_split_by_label_keep_every_class_in_one_split(tmp_path):
    out = run_prepare(tmp_path, QUORA, "--is-labeled", *SPLIT)
    found = splits_of(out)
    assert crossings(found, "label", "text") == []
    assert_fractions(found, within=0.03)  # ~1,000 classes of 1-30 questions
    assert_manifest_counts_match_the_files(out, found)
    assert_reconciled(out)


def test_labeled_rows_split_by_document_spread_each_class(tmp_path):
    """Stratified: a class of 10 questions gives its 8 / 1 / 1; identical questions stay together."""
    rows = [f"question {c}-{d},class {c}" for c in range(200) for d in range(10)]
    rows += ["the same question,class 0", "the same question,class 1"]  # identical text under two classes
    out = run_prepare(tmp_path, "\n".join(rows) + "\n", "--is-labeled", *SPLIT, "--split-by", "document")
    found = splits_of(out)
    assert crossings(found, "text") == []
    per_class = collections.Counter((row["label"], name) for name, rows in found.items() for row in rows)
    spread = [c for c in range(2, 200) if [per_class[(f"class {c}", n)] for n in FRACTIONS] == [8, 1, 1]]
    assert len(spread) >= 190, len(spread)
    assert_fractions(found)
    assert_manifest_counts_match_the_files(out, found)


def test_scored_pairs_sharing_a_sentence_are_one_group(tmp_path):
    rows = [f"sentence {i},sentence {i + 1},0.{i % 10}" for i in range(0, 2000, 2)]
    rows += [f"sentence {i},other {i},0.5" for i in range(0, 2000, 10)]  # shares sentence i with the row above
    out = run_prepare(tmp_path, "\n".join(rows) + "\n", "--layout", "scores", *SPLIT)
    found = splits_of(out)
    assert crossings(found, "chunk_text") == []
    assert_fractions(found, within=0.03)


def test_one_mesh_file_under_two_uris_in_two_labels_is_one_group(tmp_path):
    """Each bundled mesh copied under two names, each copy its own label: a mesh's bytes are not kept, so
    its content is named by its point cloud (seeded by the file's bytes): six groups of two, not twelve."""
    folder = tmp_path / "m"
    folder.mkdir()
    rows = []
    for mesh in sorted((ROOT / "examples" / "meshes").iterdir()):
        for copy in ("a", "b"):
            shutil.copyfile(mesh, folder / f"{copy}-{mesh.name}")
            rows.append(f"m/{copy}-{mesh.name},{copy} {mesh.stem}")
    (tmp_path / "meshes.csv").write_text("\n".join(rows) + "\n")
    out = run_prepare(tmp_path, tmp_path / "meshes.csv", "--layout", "labeled", *SPLIT)
    found = splits_of(out)
    where = {Path(row["uri"]).name: name for name, rows in found.items() for row in rows}
    assert len(where) == 12 and all(where[f"a-{m}"] == where[f"b-{m}"] for m in {k[2:] for k in where})
    per_split = pipelines.load_manifest(str(out))["splits"]["per_split"]
    assert sum(split["groups"] for split in per_split.values()) == 6


def test_the_same_rows_in_another_order_give_the_same_splits(tmp_path):
    rows = chained_pairs(seed=3, queries=400)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    runs = [run_prepare(tmp_path, "\n".join(r) + "\n", "--layout", "pairs", *SPLIT, "--format", "parquet")
            for r in (rows, shuffled)]
    split_by_id = [{row["id"]: name for name, found in splits_of(out).items() for row in found} for out in runs]
    assert split_by_id[0] == split_by_id[1]
    other_seed = run_prepare(tmp_path, "\n".join(rows) + "\n", "--layout", "pairs", *SPLIT, "--split-seed", "1")
    assert {row["id"]: name for name, found in splits_of(other_seed).items() for row in found} != split_by_id[0]


def test_the_direct_runner_with_two_processes_gives_the_same_splits(tmp_path):
    source = write_csv(tmp_path, "\n".join(chained_pairs(seed=5, queries=300)) + "\n", "pairs.csv")
    local = run_prepare(tmp_path, source, "--layout", "pairs", *SPLIT, "--format", "parquet")
    multi = run_prepare(tmp_path, source, "--layout", "pairs", *SPLIT, "--format", "parquet",
                        "--direct_num_workers=2", "--direct_running_mode=multi_processing")
    assert ({r["id"]: n for n, rows in splits_of(local).items() for r in rows}
            == {r["id"]: n for n, rows in splits_of(multi).items() for r in rows})


def test_readers_take_one_split(tmp_path):
    out = run_prepare(tmp_path, "\n".join(chained_pairs(queries=300)) + "\n", "--layout", "pairs", *SPLIT)
    found = splits_of(out)
    for name in FRACTIONS:
        table = pipelines.load_table(str(out), split=name)
        assert sorted(table.column("id").to_pylist()) == sorted(r["id"] for r in found[name])
        docs = pipelines.load_docs(str(out), split=name)
        assert sorted(d.id for d in docs) == sorted(r["id"] for r in found[name])
    assert pipelines.load_table(str(out)).num_rows == sum(len(rows) for rows in found.values())
    with pytest.raises(ValueError, match="no split 'dev'"):
        pipelines.load_table(str(out), split="dev")


def test_without_split_the_output_is_unsplit(tmp_path):
    out = run_prepare(tmp_path, "\n".join(chained_pairs(queries=50)) + "\n", "--layout", "pairs")
    manifest = pipelines.load_manifest(str(out))
    assert "splits" not in manifest
    assert [Path(s["path"]).name for s in manifest["shards"]["documents"]] == ["part-00000-of-00001.parquet"]
    assert pipelines.load_table(str(out)).column("split").null_count == manifest["counts"]["documents_written"]


@pytest.mark.parametrize("args, message", [
    (["--split", "train=0.8,test=0.3"], "add up to 1.1"),
    (["--split", "train"], "NAME=FRACTION"),
    (["--split", "train=0.5,train=0.5"], "names a split twice"),
    (["--split", "train=0.9,test=0.1", "--split-by", "document", "--layout", "pairs"], "applies to labeled rows"),
])
def test_split_mistakes_are_one_line(tmp_path, capsys, args, message):
    run_prepare(tmp_path, "a,b\nc,d\n", *args, expect_rc=2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("finetune-etl: error: ") and message in err[0]


def test_summary_checks_from_the_files_that_nothing_crosses(tmp_path, capsys):
    """summary reads the splits from the files: 0 labels and 0 texts in two splits here; a document of
    train copied into test's shard (a leak) is found, and the verdict says so."""
    from pipelines.datasets.summary import summarize

    out = run_prepare(tmp_path, "\n".join(chained_pairs(queries=300)) + "\n", "--layout", "pairs", *SPLIT,
                      "--format", "parquet")
    summary = summarize(str(out))
    assert (summary["splits"]["labels_in_two_splits"], summary["splits"]["content_in_two_splits"]) == (0, 0)
    assert {n: s["documents"] for n, s in summary["splits"]["per_split"].items()} == {
        n: len(rows) for n, rows in splits_of(out).items()}
    assert all(check["holds"] for check in summary["checks"])
    manifest = pipelines.load_manifest(str(out))
    test_shard = next(out / s["path"] for s in manifest["shards"]["documents"] if s["split"] == "test")
    train_shard = next(out / s["path"] for s in manifest["shards"]["documents"] if s["split"] == "train")
    leaked = pq.read_table(train_shard).slice(0, 1)
    leaked = leaked.set_column(leaked.column_names.index("split"), "split", pa.array(["test"]))
    pq.write_table(pa.concat_tables([pq.read_table(test_shard), leaked]), test_shard)
    leaky = summarize(str(out))["splits"]
    assert leaky["labels_in_two_splits"] == 1 and leaky["content_in_two_splits"] >= 1
    assert not all(check["holds"] for check in summarize(str(out))["checks"])


def test_every_documents_content_node_read_from_its_id_is_the_hash_of_its_content(tmp_path):
    """The split reads a one-piece document's content node back from its id (transforms/split/nodes.py):
    checked on what real runs write, for text, photos with and without their bytes, point clouds, and
    documents read from a .docs shard."""
    examples = ROOT / "examples"
    outputs = [run_prepare(tmp_path, examples / "seed-labeled.csv"),
               run_prepare(tmp_path, examples / "seed-pairs.csv"),
               run_prepare(tmp_path, QUORA, "--near-duplicates"),
               run_prepare(tmp_path, examples / "labeled-images.csv"),
               run_prepare(tmp_path, examples / "labeled-images.csv", "--no-convert-to-blob"),
               run_prepare(tmp_path, examples / "labeled-meshes.csv")]
    shard = pipelines.load_manifest(str(outputs[3]))["shards"]["docarray"][0]["path"]
    outputs.append(run_prepare(tmp_path, outputs[3] / shard))
    for out in outputs:
        documents = pipelines.load_table(str(out))
        assert documents.num_rows and documents.column("chunks").null_count == documents.num_rows
        hashed = content_nodes(*(documents.column(name) for name in ("modality", "text", "uri", "blob", "point_cloud")))
        assert flat_content_nodes(documents, label_hashes(documents.column("label"))).tolist() == hashed.tolist(), out
