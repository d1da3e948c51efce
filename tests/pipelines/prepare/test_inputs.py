"""pipelines.prepare.inputs: --input patterns to files, and each file's reading options from its first bytes."""
import fsspec
import pytest

from conftest import ROOT, write_csv
from pipelines.prepare.inputs import DECISION_LINES, InputPlan, decision_lines, expand_inputs, is_docarray, plan_inputs
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


@pytest.mark.parametrize("header, why", [("yes", "--header yes"), ("auto", "its cells are column names")])
def test_plan_detects_image_columns_and_skips_the_header(tmp_path, header, why):
    source = write_csv(tmp_path, "caption,picture\nA cat.,cat.jpg\nA dog.,https://x.org/dog.png?s=2\n")
    plan = plan_inputs([str(source)], CSVOptions(header=header))
    assert (plan.layout, plan.modalities) == ("pairs", ("text", "image"))
    assert plan.files[0].header is True and plan.estimated_rows == 3
    assert (plan.decisions[0].header_why, plan.decisions[0].header_forced) == (why, header == "yes")


def test_header_no_reads_a_row_of_column_names_as_data(tmp_path):
    source = write_csv(tmp_path, "text,label\nHello,greeting\n")
    plan = plan_inputs([str(source)], CSVOptions(header="no"))
    assert plan.files[0].header is False and plan.decisions[0].header_why == "--header no"


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


# Each file's layout, and files that disagree -----------------------------------------------------------

EXAMPLES = ROOT / "examples"


def plan_of(*paths, **options) -> InputPlan:
    return plan_inputs([str(p) for p in paths], CSVOptions(**options))


def decision_for(plan: InputPlan, path):
    """The plan's decision for one file (plans list files sorted by URL, whatever order they were given)."""
    return next(d for d in plan.decisions if d.url == str(path))


def test_each_file_gets_its_own_recorded_decision(tmp_path):
    """Two labeled text files: one run, each file's decision kept (in the order of the files)."""
    plan = plan_of(EXAMPLES / "quora-labeled.csv", EXAMPLES / "seed-labeled.csv")
    assert (plan.layout, plan.modalities) == ("labeled", ("text",))
    assert [(d.url, d.layout, d.modalities, d.header) for d in plan.decisions] == [
        (str(EXAMPLES / "quora-labeled.csv"), "labeled", ("text",), False),
        (str(EXAMPLES / "seed-labeled.csv"), "labeled", ("text",), False)]
    assert [d.url for d in plan.decisions] == [f.url for f in plan.files]
    assert "column 2 repeats like labels (6 distinct values in column 1 and 2 in column 2, of 6 rows)" in (
        plan.decisions[1].layout_why)


@pytest.mark.parametrize("first, second, looks", [
    ("labeled-images.csv", "clip.csv", ["clip.csv looks like CLIP pairs (text, image)",
                                        "labeled-images.csv looks like labeled image rows (image, label)"]),
    ("seed-labeled.csv", "seed-pairs.csv", ["seed-labeled.csv looks like labeled text rows (text, label)",
                                            "seed-pairs.csv looks like query-document pairs (text, text)"]),
    ("seed-labeled.csv", "labeled-images.csv", ["labeled-images.csv looks like labeled image rows (image, label)",
                                                "seed-labeled.csv looks like labeled text rows (text, label)"]),
])
def test_files_that_look_different_are_refused_in_one_line_naming_each(first, second, looks):
    with pytest.raises(ConfigError) as caught:
        plan_of(EXAMPLES / first, EXAMPLES / second)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("the inputs need different layouts: ")
    assert all(look in message for look in looks), message
    assert "pass --layout and --modalities to read every file alike" in message


def test_forcing_the_layout_and_modalities_reads_different_files_alike():
    """Labeled text and labeled images with --layout labeled alone still differ in modality; with
    --modalities too they are one run (the image rows then fail one by one)."""
    with pytest.raises(ConfigError, match="labeled image rows .* labeled text rows"):
        plan_of(EXAMPLES / "labeled-images.csv", EXAMPLES / "seed-labeled.csv", layout="labeled")
    plan = plan_of(EXAMPLES / "labeled-images.csv", EXAMPLES / "seed-labeled.csv", layout="labeled",
                   modalities=("text",))
    assert (plan.layout, plan.modalities) == ("labeled", ("text",))
    assert all(d.layout_forced and d.layout_why == "--layout labeled" for d in plan.decisions)


def test_a_file_read_only_by_default_follows_the_others(tmp_path):
    """A two-row file whose columns do not repeat is pairs only by Finetuner's default: with a labeled
    file beside it, it is read as labeled too, and its reason says so."""
    small = write_csv(tmp_path, "Good night., greeting-english\nSee you!, farewell-english\n", "small.csv")
    alone = plan_of(small)
    assert alone.layout == "pairs" and "so Finetuner's default" in alone.decisions[0].layout_why
    plan = plan_of(small, EXAMPLES / "seed-labeled.csv")
    assert (plan.layout, plan.modalities) == ("labeled", ("text",))
    assert decision_for(plan, small).layout_why.endswith("; read as labeled like the other inputs")
    assert decision_for(plan, small).other_layout == ""


def test_a_file_with_no_rows_follows_the_others(tmp_path):
    empty = write_csv(tmp_path, "", "empty.csv")
    plan = plan_of(empty, EXAMPLES / "seed-scores.csv")
    assert (plan.layout, [f.expected_fields for f in plan.files]) == ("scores", [3, 3])
    assert decision_for(plan, empty).layout_why == (
        "no rows of 3 columns in its first 64 KiB: read like the other inputs")


# What is printed before a run --------------------------------------------------------------------------


def test_decision_lines_say_each_guess_its_reason_and_the_flag_that_overrides_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path, "query,document\nRice dishes,Chicken curry\nRice dishes,Risotto\n", "qd.csv")
    lines = decision_lines(plan_of("qd.csv"))
    assert lines == [
        'finetune-etl: qd.csv: first row "query,document" read as a header (its cells are column names); '
        "pass --header no to read it as data",
        "finetune-etl: qd.csv: read as query-document pairs (text, text): column 1 repeats like queries (1 distinct "
        "value in column 1 and 2 in column 2, of 2 rows); pass --is-labeled if column 2 is a label"]


def test_forced_decisions_are_not_repeated(tmp_path):
    source = write_csv(tmp_path, "Hello,greeting\nHi,greeting\n")
    assert decision_lines(plan_of(source, header="no", layout="labeled")) == []
    only_layout = decision_lines(plan_of(source, header="no"))
    assert len(only_layout) == 1 and "read as labeled text rows (text, label): column 2 repeats" in only_layout[0]


def test_decision_lines_stop_after_a_screenful(tmp_path):
    for i in range(DECISION_LINES):
        write_csv(tmp_path, f"row {i},a\nother {i},a\n", f"f{i:02}.csv")
    lines = decision_lines(plan_of(tmp_path / "*.csv"))
    assert len(lines) == DECISION_LINES + 1
    assert lines[-1] == (f"finetune-etl: and {DECISION_LINES} more such decisions: finetune-etl inspect shows them "
                         "all, manifest.json records them")
