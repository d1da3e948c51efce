"""pipelines.datasets.retry: which failed rows can be written again, the retry file, and the re-run command."""
import dataclasses
import shlex

from conftest import write_csv
from pipelines.datasets.retry import RetryRows, collect, read_records, rerun_command, write_retry_file
from schemas.options import CSVOptions, MediaOptions, OutputOptions


def source(path, delimiter=",", header=False, fields=2) -> dict:
    """A manifest input entry for an existing file."""
    return {"url": str(path), "size": path.stat().st_size, "delimiter": delimiter, "skipinitialspace": False,
            "encoding": "utf-8", "header": header, "fields": fields}


def manifest(inputs, layout="labeled", modalities=("text",), csv=CSVOptions(), output=OutputOptions("out"),
             media=MediaOptions()) -> dict:
    as_dict = dataclasses.asdict
    return {"inputs": inputs, "layout": layout, "modalities": list(modalities),
            "options": {"csv": as_dict(csv), "output": as_dict(output), "media": as_dict(media)}}


def letter(file, row, stage="layout", reason_class="empty_value", raw=None) -> dict:
    return {"source_file": str(file), "source_row": row, "stage": stage, "reason_class": reason_class,
            "reason": "why", "raw": raw}


def test_rows_are_cut_with_their_stage_dialect_once_each_in_file_order(tmp_path):
    tabs = write_csv(tmp_path, "a\tb\n", "b.tsv")
    commas = write_csv(tmp_path, "x\n", "a.csv")
    dead = [letter(tabs, 9, "read", "field_count", "one\ttwo, too\tthree"),
            letter(tabs, 2, "layout", "score", 'first,"second, with comma"'),
            letter(tabs, 2, "layout", "score", 'first,"second, with comma"'),   # both documents of a pair
            letter(commas, 5, "layout", "empty_value", "lonely,")]
    rows = collect(dead, manifest([source(tabs, "\t", fields=3), source(commas)]))
    assert [(s["url"], line, fields) for s, line, fields in rows.rows] == [
        (str(commas), 5, ["lonely", ""]),
        (str(tabs), 2, ["first", "second, with comma"]),
        (str(tabs), 9, ["one", "two, too", "three"]),
    ]
    assert rows.not_retryable == []


def test_what_cannot_be_written_again_says_why(tmp_path):
    data = write_csv(tmp_path, "a,b\n")
    dead = [letter(data, 1, "read", "quote", '"never closed'),
            letter(data, 2, "read", "nul_byte", "a\0b"),
            letter(data, 3, "group", "duplicate_id", "x"),
            letter(data, 4, "layout", "empty_value", None),
            letter(data, 5, "layout", "empty_value", "one,two\nthree,four"),
            letter(tmp_path / "in.docs", 1, "read", "no_content", None)]
    rows = collect(dead, manifest([source(data), {"url": str(tmp_path / "in.docs"), "size": 9, "format": "docarray"}]))
    assert rows.rows == []
    why = {(r["source_file"].rsplit("/", 1)[1], r["source_row"]): r["why"] for r in rows.not_retryable}
    assert "its quotes do not parse" in why[("input.csv", 1)]
    assert "NUL byte" in why[("input.csv", 2)]
    assert why[("input.csv", 3)] == "stage 'group' rejects documents, not rows"
    assert "keeps no text of the row" in why[("input.csv", 4)]
    assert why[("input.csv", 5)] == "its text does not hold exactly one CSV record"
    assert "not a CSV row; fix that docarray file" in why[("in.docs", 1)]


def test_media_rows_are_read_again_with_paths_made_absolute(tmp_path):
    data = write_csv(tmp_path / "data", 'images/a.jpg,cat\n"images/b.jpg, x",dog.jpg\n/abs/c.png,cow\n', "in.csv")
    dead = [letter(data, row, "media", "missing", f"raw-{row}") for row in (1, 2, 3)]
    rows = collect(dead, manifest([source(data)], modalities=("image",)))
    folder = tmp_path / "data"
    assert [fields for _, _, fields in rows.rows] == [
        [f"{folder}/images/a.jpg", "cat"],
        ["images/b.jpg, x", "dog.jpg"],   # a sentence is not a path; the label column is not media
        ["/abs/c.png", "cow"],
    ]


def test_media_rows_come_from_their_dead_letters_even_when_the_file_is_gone(tmp_path):
    """A media dead letter keeps its CSV row in `raw` (datasets of this version): the retry file is written
    from it, with relative paths made absolute against the source file's folder, after the CSV was deleted."""
    data = write_csv(tmp_path / "data", 'images/a.jpg,cat\n"images/b,c.jpg",dog\n', "in.csv")
    entry = source(data)
    data.unlink()
    dead = [letter(data, 1, "media", "missing", "images/a.jpg,cat"),
            letter(data, 2, "media", "image_unreadable", '"images/b,c.jpg",dog')]
    rows = collect(dead, manifest([entry], modalities=("image",)))
    folder = tmp_path / "data"
    assert [(line, fields) for _, line, fields in rows.rows] == [
        (1, [f"{folder}/images/a.jpg", "cat"]), (2, [f"{folder}/images/b,c.jpg", "dog"])]
    assert rows.not_retryable == []


def test_a_row_of_another_width_resolves_values_of_the_runs_media_kinds(tmp_path):
    data = write_csv(tmp_path, "x\n")
    rows = collect([letter(data, 7, "read", "field_count", "a.jpg,b.off,label")],
                   manifest([source(data)], modalities=("image",)))
    assert rows.rows[0][2] == [f"{tmp_path}/a.jpg", "b.off", "label"]  # no mesh column in this run


def test_read_records_by_start_line(tmp_path):
    data = write_csv(tmp_path, '\ufeffone,1\n"two\nlines",2\nthree,3\n')
    assert read_records(source(data), {1, 2, 4}) == {1: ["one", "1"], 2: ["two\nlines", "2"], 4: ["three", "3"]}
    assert read_records(source(data), {3}) == {}  # line 3 is inside the second record


def test_write_retry_file_nothing_to_write(tmp_path):
    assert write_retry_file(RetryRows([], []), str(tmp_path / "retry.csv")) is None
    assert not (tmp_path / "retry.csv").exists()


def test_write_retry_file_keeps_the_header_and_delimiter(tmp_path):
    data = write_csv(tmp_path, "left;right\na;b\n")
    first = source(data, ";", header=True)
    target = tmp_path / "new" / "folder" / "retry.csv"
    written = write_retry_file(RetryRows([(first, 2, ["a;1", 'b "2"'])], []), str(target))
    assert written == {"delimiter": ";", "header": True}
    assert target.read_text(encoding="utf-8") == 'left;right\n"a;1";"b ""2"""\n'


def test_write_retry_file_names_the_columns_when_the_header_is_gone(tmp_path):
    data = write_csv(tmp_path, "h1,h2\nx,y\n")
    first = source(data, header=True)
    data.unlink()
    write_retry_file(RetryRows([(first, 2, ["x", "y"])], []), str(tmp_path / "retry.csv"))
    assert (tmp_path / "retry.csv").read_text(encoding="utf-8") == "column_1,column_2\nx,y\n"


def test_rerun_command_with_default_options():
    command = rerun_command("/r/retry file.csv", {"delimiter": ",", "header": False}, manifest([]), "/d/out-retry")
    assert command == "finetune-etl prepare --input '/r/retry file.csv' --output /d/out-retry --layout labeled " \
                      "--modalities text --header no --dialect excel"


def test_rerun_command_names_a_delimiter_no_dialect_has():
    command = rerun_command("r.csv", {"delimiter": ";", "header": True}, manifest([]), "o")
    assert command.endswith("--header yes --delimiter ';'")


def test_rerun_command_repeats_the_options_that_change_documents():
    media = MediaOptions(convert_to_blob=False, allow_private_network=True, image_box=(224, 160),
                         allowed_roots=("/a", "/b"), point_cloud_size=512, decode_timeout=0)
    run = manifest([], layout="scores", modalities=("text", "text"), csv=CSVOptions(score_scale=5.0, size=3),
                   output=OutputOptions("o", format="parquet"), media=media)
    args = shlex.split(rerun_command("r.tsv", {"delimiter": "\t", "header": True}, run, "o-retry"))
    assert args[:9] == ["finetune-etl", "prepare", "--input", "r.tsv", "--output", "o-retry", "--layout", "scores",
                        "--modalities"]
    rest = " ".join(args[9:])
    for part in ("--header yes", "--dialect excel-tab", "--score-scale 5", "--format parquet", "--no-convert-to-blob",
                 "--allow-private-network", "--point-cloud-size 512", "--image-box 224x160",
                 "--allowed-roots /a,/b", "--decode-timeout 0"):
        assert part in rest, part
    assert "--size" not in args and "--create-point-clouds" not in rest and "--image-quality" not in rest


def test_rerun_command_leaves_other_delimiters_to_the_sniffer():
    command = rerun_command("r.csv", {"delimiter": ";", "header": False}, manifest([], modalities=()), "o")
    assert "--dialect" not in command and "--modalities" not in command
