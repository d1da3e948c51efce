"""pipelines.prepare.inputs: --input patterns to files, and each file's reading options from its first bytes."""
import fsspec
import pytest

from conftest import write_csv
from pipelines.prepare.inputs import expand_inputs, is_docarray, plan_inputs
from schemas.docarray_docs import TrainingDoc, docs_to_bytes
from schemas.inputs import Dialect
from schemas.options import ConfigError, CSVOptions


def docs_file(folder, name="docs.docs", n=2):
    """A .docs input of n labeled text documents."""
    path = folder / name
    path.write_bytes(docs_to_bytes([TrainingDoc(modality="text", text=f"doc {i}", tags={"finetuner_label": "a"})
                                    for i in range(n)]))
    return path


def test_expand_inputs_sorted_unique_with_sizes(tmp_path):
    b = write_csv(tmp_path, "bb\n", "b.csv")
    a = write_csv(tmp_path, "a\n", "a.csv")
    write_csv(tmp_path, "c\n", "c.tsv")
    found = expand_inputs([str(tmp_path / "*.csv"), str(b), f"file://{a}"])
    assert found == [(str(a), 2), (str(b), 3)]


def test_expand_inputs_makes_relative_patterns_absolute(tmp_path, monkeypatch):
    write_csv(tmp_path / "data", "x\n", "one.csv")
    monkeypatch.chdir(tmp_path)
    assert expand_inputs(["data/*.csv"]) == [(str(tmp_path / "data" / "one.csv"), 2)]


def test_expand_inputs_of_a_url_keeps_its_protocol():
    fs = fsspec.filesystem("memory")
    fs.pipe("/expand-inputs/one.csv", b"a,b\n")
    fs.pipe("/expand-inputs/two.csv", b"a,b\nc,d\n")
    assert expand_inputs(["memory://expand-inputs/*.csv"]) == [
        ("memory:///expand-inputs/one.csv", 4), ("memory:///expand-inputs/two.csv", 8)]


@pytest.mark.parametrize("pattern, message", [
    ("missing.csv", "does not exist"),
    ("nothing-*.csv", "matches no file"),
    ("", "is a folder; pass a glob such as"),
])
def test_expand_inputs_errors(tmp_path, pattern, message):
    with pytest.raises(ConfigError, match=message) as caught:
        expand_inputs([str(tmp_path / pattern)])
    assert str(tmp_path) in str(caught.value)


def test_a_glob_that_matches_only_folders_matches_no_file(tmp_path):
    (tmp_path / "sub.csv").mkdir()
    with pytest.raises(ConfigError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.csv")])


@pytest.mark.parametrize("url, expected", [("a.docs", True), ("gs://b/A.DOCS", True), ("a.docs.csv", False),
                                           ("docs", False), ("a.csv", False)])
def test_is_docarray(url, expected):
    assert is_docarray(url) is expected


def test_plan_sniffs_each_files_dialect(tmp_path):
    tabs = write_csv(tmp_path, "a cat\ta kitten\t0.9\nsun\tmoon\t0.1\n", "tabs.csv")
    spaced = write_csv(tmp_path, "the sky, is blue, 1\nwater, is wet, 0.5\n", "spaced.csv")
    plan = plan_inputs([str(tabs), str(spaced)], CSVOptions())
    dialects = {f.url.rsplit("/", 1)[1]: f.dialect for f in plan.files}
    assert dialects == {"tabs.csv": Dialect("\t"), "spaced.csv": Dialect(",", skipinitialspace=True)}
    assert (plan.layout, plan.modalities) == ("scores", ("text", "text"))
    assert all(f.expected_fields == 3 and f.encoding == "utf-8" and not f.header for f in plan.files)


def test_plan_with_a_named_dialect_does_not_sniff(tmp_path):
    source = write_csv(tmp_path, "a;b;c\nd;e;f\n")
    assert plan_inputs([str(source)], CSVOptions()).files[0].dialect == Dialect(";")
    forced = plan_inputs([str(source)], CSVOptions(dialect="excel", layout="values"))
    assert forced.files[0].dialect == Dialect(",") and forced.files[0].expected_fields == 1


def test_plan_detects_image_columns_and_skips_the_header(tmp_path):
    source = write_csv(tmp_path, "caption,picture\nA cat.,cat.jpg\nA dog.,https://x.org/dog.png?s=2\n")
    plan = plan_inputs([str(source)], CSVOptions(header=True))
    assert (plan.layout, plan.modalities) == ("pairs", ("text", "image"))
    assert plan.files[0].header is True and plan.estimated_rows == 3


def test_plan_keeps_the_layout_and_forced_modalities(tmp_path):
    source = write_csv(tmp_path, "shoes/1.jpg,shoes\nshoes/2.jpg,shoes\n")
    assert plan_inputs([str(source)], CSVOptions(layout="labeled")).modalities == ("image",)
    forced = plan_inputs([str(source)], CSVOptions(layout="labeled", modalities=("text",)))
    assert (forced.layout, forced.modalities) == ("labeled", ("text",))


def test_a_given_layout_reads_files_of_other_widths(tmp_path):
    """With --layout pairs, a three-column file does not stop the plan: its rows fail later, one by one."""
    pairs = write_csv(tmp_path, "a,b\nc,d\n", "pairs.csv")
    scores = write_csv(tmp_path, "a,b,0.5\n", "scores.csv")
    plan = plan_inputs([str(pairs), str(scores)], CSVOptions(layout="pairs"))
    assert [f.expected_fields for f in plan.files] == [2, 2]


def test_mixed_docs_and_csv_inputs(tmp_path):
    csv_file = write_csv(tmp_path, "hello,greeting\nbye,farewell\n", "rows.csv")
    docs = docs_file(tmp_path)
    plan = plan_inputs([str(tmp_path / "*")], CSVOptions())
    assert [f.url for f in plan.files] == [str(csv_file)]
    assert plan.docarray_files == ((str(docs), docs.stat().st_size),)
    assert plan.layout == "pairs"


def test_docs_inputs_alone_need_no_layout(tmp_path):
    docs = docs_file(tmp_path, "a.docs", n=50)
    plan = plan_inputs([str(docs)], CSVOptions())
    size = docs.stat().st_size
    assert (plan.files, plan.layout, plan.modalities) == ((), "docarray", ())
    assert plan.docarray_files == ((str(docs), size),) and plan.estimated_rows == size // 100
