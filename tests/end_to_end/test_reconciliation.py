"""Every row is accounted for: documented, dead-lettered (with where and why) or sampled out."""
import pytest
from conftest import assert_reconciled, counts, dead_letters, documents, run_prepare, sorted_docs, text_documents

import pipelines

# A query-document file with CRLF line ends and most things that go wrong (line numbers on the right).
MESSY_PAIRS = (
    "Rice dishes,Chicken curry\r\n"        # 1
    "Rice dishes,Risotto\r\n"              # 2
    "\r\n"                                 # 3  blank
    "Pasta dishes,Spaghetti,extra\r\n"     # 4  three fields
    "Rice dishes,Chicken curry\r\n"        # 5  duplicate pair
    ",Empty query\r\n"                     # 6  empty value
    "Soup,   \r\n"                         # 7  blank value
    "Soup,/images/soup.jpg\r\n"            # 8  image path in a text column
    "lonely\r\n"                           # 9  one field
    '"Multi\r\nline",Soup\r\n'             # 10-11 one record over two lines
    "\r\n"                                 # 12 blank
    "Noodles,Ramen\r\n"                    # 13
    "Noodles,Ramen,,\r\n"                  # 14 four fields
)
MESSY_PAIRS_DEAD = {4: ("read", "field_count"), 6: ("layout", "empty_value"), 7: ("layout", "empty_value"),
                    8: ("layout", "modality"), 9: ("read", "field_count"), 14: ("read", "field_count")}

MESSY_SCORES = (
    "a,b,0.5\r\n"          # 1
    "c,d,1.5\r\n"          # 2  above 1
    "\r\n"                 # 3  blank
    "e,f,abc\r\n"          # 4  not a number
    "g,h,-0.1\r\n"         # 5  below 0
    "i,j,1\r\n"            # 6
    "k,l,\r\n"             # 7  empty score
    "m,n,0.25,extra\r\n"   # 8  four fields
    "o,p,nan\r\n"          # 9  NaN
    "q,r,0.75\r\n"         # 10
    "a,b,0.5\r\n"          # 11 same as row 1 (kept: one document per row)
)
MESSY_SCORES_DEAD = {2: ("layout", "score"), 4: ("layout", "score"), 5: ("layout", "score"),
                     7: ("layout", "score"), 8: ("read", "field_count"), 9: ("layout", "score")}


@pytest.fixture(scope="module")
def messy_pairs(tmp_path_factory):
    return run_prepare(tmp_path_factory.mktemp("messy_pairs"), MESSY_PAIRS)


@pytest.fixture(scope="module")
def messy_scores(tmp_path_factory):
    return run_prepare(tmp_path_factory.mktemp("messy_scores"), MESSY_SCORES)


def test_messy_pairs_counts_reconcile(messy_pairs):
    """rows_read = documented + dead + sampled out; candidates = written + duplicates removed."""
    c = assert_reconciled(messy_pairs)
    assert c["rows_read"] == 11  # 14 lines, 2 blank, one record on two lines
    assert c["dead_letters"] == len(MESSY_PAIRS_DEAD)
    assert c["rows_documented"] == 5


def test_messy_pairs_duplicates_removed(messy_pairs):
    """Rice dishes x3 as a query and Chicken curry x2 under it: 3 duplicates, 7 documents left."""
    c = counts(messy_pairs)
    assert c["duplicates_removed"] == 3
    assert c["documents_written"] == 7
    assert documents(messy_pairs) == sorted_docs([
        *text_documents("Rice dishes", "Rice dishes", "Chicken curry", "Risotto"),
        *text_documents("Multi\r\nline", "Multi\r\nline", "Soup"),
        *text_documents("Noodles", "Noodles", "Ramen"),
    ])


def test_messy_pairs_dead_letters_say_where_and_why(messy_pairs, tmp_path_factory):
    """Each dead letter has the source file, the 1-based line where its record starts, a stage, a reason
    class and a non-empty reason."""
    dead = dead_letters(messy_pairs)
    assert {d["source_row"]: (d["stage"], d["reason_class"]) for d in dead} == MESSY_PAIRS_DEAD
    source = pipelines.load_manifest(str(messy_pairs))["inputs"][0]["url"]
    for d in dead:
        assert d["source_file"] == source
        assert d["reason"].strip()
        assert d["raw"]


def test_messy_pairs_manifest_counts_dead_letters_by_stage(messy_pairs):
    """The manifest's per-stage dead-letter counts add up to dead_letters and match the dead-letter files."""
    c = counts(messy_pairs)
    by_stage = {k: v for k, v in c.items() if k.startswith("dead_letters.")}
    assert sum(by_stage.values()) == c["dead_letters"] == len(dead_letters(messy_pairs))


def test_messy_scores_counts_reconcile(messy_scores):
    """Bad scores (out of range, not numbers, empty, NaN) are dead letters; counts reconcile."""
    c = assert_reconciled(messy_scores)
    assert c["rows_read"] == 10
    assert c["dead_letters"] == len(MESSY_SCORES_DEAD)
    assert c["rows_documented"] == 4


def test_messy_scores_dead_letters_say_where_and_why(messy_scores):
    dead = dead_letters(messy_scores)
    assert {d["source_row"]: (d["stage"], d["reason_class"]) for d in dead} == MESSY_SCORES_DEAD
    for d in dead:
        assert d["source_file"] and d["reason"].strip()


def test_messy_scores_documents(messy_scores):
    """The good rows are pair documents with their scores, one per row (scores layout keeps repeats)."""
    assert sorted((d[1], d[5][0][1], d[5][1][1]) for d in documents(messy_scores)) == [
        (0.5, "a", "b"), (0.5, "a", "b"), (0.75, "q", "r"), (1.0, "i", "j")]
    assert counts(messy_scores).get("duplicates_removed", 0) == 0


# Sampling ------------------------------------------------------------------------------------------------

SAMPLED = "".join(f"sentence number {i},label {i % 4}\n" for i in range(40)) + "bad row\n" + "same,label\n" * 3


def kept_rows(out) -> list[tuple]:
    table = pipelines.load_table(str(out))
    return sorted(zip(table.column("text").to_pylist(), table.column("label").to_pylist(),
                      table.column("source_row").to_pylist()))


@pytest.fixture(scope="module")
def size_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("size")
    return [run_prepare(tmp, SAMPLED, "--is-labeled", "--size", "3") for _ in range(2)]


@pytest.fixture(scope="module")
def rate_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rate")
    return [run_prepare(tmp, SAMPLED, "--is-labeled", "--sampling-rate", "0.5") for _ in range(2)]


def test_size_keeps_exactly_n_rows(size_runs):
    """--size 3 keeps 3 rows; the others are sampled out and counts reconcile."""
    for out in size_runs:
        assert len(kept_rows(out)) == 3
        c = assert_reconciled(out)
        assert c["sampled_out"] == 43 - 3
        assert c["dead_letters"] == 1


def test_size_keeps_the_same_rows_on_two_runs(size_runs):
    first, second = size_runs
    assert kept_rows(first) == kept_rows(second)


def test_sampling_rate_keeps_about_half_and_reconciles(rate_runs):
    """--sampling-rate 0.5 keeps some but not all rows; sampled_out accounts for the rest."""
    for out in rate_runs:
        kept = len(kept_rows(out))
        assert 5 <= kept <= 38
        c = assert_reconciled(out)
        assert c["sampled_out"] == 43 - kept
        assert c["rows_documented"] == kept


def test_sampling_rate_keeps_the_same_rows_on_two_runs(rate_runs):
    first, second = rate_runs
    assert kept_rows(first) == kept_rows(second)


def test_sampling_rate_keeps_equal_rows_together(rate_runs):
    """The rate decides by content: the three identical `same,label` rows are kept or dropped together."""
    same = [r for r in kept_rows(rate_runs[0]) if r[0] == "same"]
    assert len(same) in (0, 3)
