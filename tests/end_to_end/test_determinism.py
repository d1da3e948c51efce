"""The output depends only on the data and the options: not on row order, file order, runner or shard size."""
import hashlib
import random
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import documents, run_prepare

import pipelines
from pipelines.cli import main

# Query-document rows with repeated queries, a repeated pair, and quoted values.
PAIR_ROWS = ([f"query {i % 7},document {i}" for i in range(60)]
             + ["query 1,document 1", "query 2,document 9", '"query, with comma","document ""quoted"""'])
LABELED_ROWS = [f"sentence {i},label {i % 5}" for i in range(60)] + ["sentence 3,label 3", '"a, b",label 0']


def shuffled(rows: list[str], seed: int) -> list[str]:
    rows = rows[:]
    random.Random(seed).shuffle(rows)
    return rows


def as_file(rows: list[str]) -> str:
    return "\n".join(rows) + "\n"


def file_digests(out, kinds=("documents", "dead_letters"), pattern="*.parquet") -> dict:
    """{relative path: sha256} of the dataset's files of the given kinds (Parquet by default)."""
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for kind in kinds for p in sorted((out / kind).glob(pattern))}


@pytest.fixture(scope="module")
def pairs_baseline(tmp_path_factory):
    """(folder, output) of the pairs rows in their original order, single process."""
    tmp = tmp_path_factory.mktemp("pairs")
    return tmp, run_prepare(tmp, as_file(PAIR_ROWS))


def test_shuffled_rows_give_same_pair_documents_and_ids(pairs_baseline, tmp_path):
    """Pairs layout: permuted rows give the same documents, ids included."""
    _, baseline = pairs_baseline
    out = run_prepare(tmp_path, as_file(shuffled(PAIR_ROWS, 1)))
    assert documents(out, with_ids=True) == documents(baseline, with_ids=True)


def test_shuffled_rows_give_same_labeled_documents(tmp_path):
    """Labeled layout: permuted rows give the same documents (content; ids may number repeats by position)."""
    a = run_prepare(tmp_path, as_file(LABELED_ROWS), "--is-labeled")
    b = run_prepare(tmp_path, as_file(shuffled(LABELED_ROWS, 2)), "--is-labeled")
    assert documents(a) == documents(b)
    assert len(documents(a)) == len(LABELED_ROWS)


@pytest.mark.parametrize("order", ["first-second", "second-first"])
def test_rows_split_into_two_files_in_either_order(pairs_baseline, tmp_path, order):
    """The rows split into two files, passed in either order: the same documents and ids as one file."""
    _, baseline = pairs_baseline
    rows = shuffled(PAIR_ROWS, 3)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(as_file(rows[:30]))
    second.write_text(as_file(rows[30:]))
    inputs = [first, second] if order == "first-second" else [second, first]
    out = tmp_path / "out"
    assert main(["prepare", "--input", str(inputs[0]), "--input", str(inputs[1]), "--output", str(out)]) == 0
    assert documents(out, with_ids=True) == documents(baseline, with_ids=True)


def test_multi_processing_gives_byte_identical_parquet(tmp_path):
    """--direct_running_mode=multi_processing with 2 workers writes the same bytes as one process, on a file
    cut into many byte ranges and small batches (so work really is spread), with some dead letters."""
    rows = [f"query {i % 11},document {i} with some padding text" for i in range(600)]
    rows[100:100] = ["broken row"]
    rows[400:400] = ["query 1,", "query 2,too,many"]
    options = ("--range-bytes", "1024", "--batch-rows", "16")
    single = run_prepare(tmp_path, as_file(rows), *options)
    source = Path(pipelines.load_manifest(str(single))["inputs"][0]["url"])
    multi = run_prepare(tmp_path, source, *options,
                        "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert pipelines.load_manifest(str(single))["counts"]["dead_letters"] == 3
    assert file_digests(multi) == file_digests(single)


@pytest.fixture(scope="module")
def rerun(pairs_baseline):
    tmp, baseline = pairs_baseline
    return run_prepare(tmp, Path(pipelines.load_manifest(str(baseline))["inputs"][0]["url"]))


def test_rerun_gives_byte_identical_documents(pairs_baseline, rerun):
    """Running again on the same input into a fresh output: byte-identical documents Parquet."""
    _, baseline = pairs_baseline
    assert file_digests(rerun, kinds=("documents",))
    assert file_digests(rerun, kinds=("documents",)) == file_digests(baseline, kinds=("documents",))


def test_rerun_gives_byte_identical_docarray_shards(pairs_baseline, rerun):
    """The docarray shards (.docs) of a re-run are byte-identical too."""
    _, baseline = pairs_baseline
    assert file_digests(rerun, kinds=("docarray",), pattern="*.docs")
    assert file_digests(rerun, kinds=("docarray",), pattern="*.docs") == file_digests(
        baseline, kinds=("docarray",), pattern="*.docs")


@pytest.fixture(scope="module")
def small_shards(pairs_baseline):
    tmp, baseline = pairs_baseline
    source = pipelines.load_manifest(str(baseline))["inputs"][0]["url"]
    return run_prepare(tmp, Path(source), "--shard-rows", "3")


def test_shard_rows_gives_same_documents(pairs_baseline, small_shards):
    """--shard-rows 3 gives the same documents and ids as one shard."""
    _, baseline = pairs_baseline
    assert documents(small_shards, with_ids=True) == documents(baseline, with_ids=True)


def test_shard_rows_bounds_every_shard(small_shards):
    """With --shard-rows 3 no documents shard holds more than 3 rows (files and manifest agree)."""
    files = sorted((small_shards / "documents").glob("*.parquet"))
    assert len(files) > 1
    assert all(pq.read_metadata(f).num_rows <= 3 for f in files)
    manifest = pipelines.load_manifest(str(small_shards))
    assert all(s["rows"] <= 3 for s in manifest["shards"]["documents"])
    assert sum(s["rows"] for s in manifest["shards"]["documents"]) == manifest["counts"]["documents_written"]


def test_shard_files_are_named_part_of_total(small_shards):
    """Shards are documents/part-NNNNN-of-MMMMM.parquet, numbered 0..M-1 with M the number of shards."""
    names = sorted(p.name for p in (small_shards / "documents").iterdir())
    total = len(names)
    assert names == [f"part-{i:05d}-of-{total:05d}.parquet" for i in range(total)]
    assert all(re.fullmatch(r"part-\d{5}-of-\d{5}\.parquet", n) for n in names)
    manifest = pipelines.load_manifest(str(small_shards))
    assert [s["path"] for s in manifest["shards"]["documents"]] == [f"documents/{n}" for n in names]


def test_output_holds_only_the_dataset(pairs_baseline):
    """After a run the output folder holds the dataset only: no staging, spill or probe files left."""
    _, baseline = pairs_baseline
    assert sorted(p.name for p in baseline.iterdir()) == [
        "README.md", "_SUCCESS", "dead_letters", "docarray", "documents", "duplicates", "manifest.json"]


def doc_tuples(docs) -> list[tuple]:
    return sorted((d.text, d.tags.get("finetuner_label"), d.modality) for d in docs)


@pytest.mark.parametrize("fmt", ["parquet", "docarray"])
def test_every_format_loads_the_same_documents(pairs_baseline, tmp_path, fmt):
    """--format parquet or docarray writes the same documents as both: load_table and load_docs see them
    whichever files were written."""
    _, baseline = pairs_baseline
    out = run_prepare(tmp_path, Path(pipelines.load_manifest(str(baseline))["inputs"][0]["url"]), "--format", fmt)
    assert doc_tuples(pipelines.load_docs(str(out))) == doc_tuples(pipelines.load_docs(str(baseline)))
    assert documents(out, with_ids=True) == documents(baseline, with_ids=True)
