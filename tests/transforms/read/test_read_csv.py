"""The ReadCsv stage in a real pipeline: files cut into several 1 KiB byte ranges (planned by the stage, or
in advance with plan_ranges) read into row batches with the right line numbers, dead letters and counts."""
import json
import math

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from conftest import python_csv_records, write_csv

from schemas.inputs import Dialect, InputFile
from schemas.options import ReadTuning
from transforms.read.byte_ranges import plan_ranges
from transforms.read.csv_parse import RAW_PREFIX_BYTES
from transforms.read.read_csv import ReadCsv
from transforms.stage import StageOutput, SumCounts

TUNING = ReadTuning(range_bytes=1024, batch_rows=7)
BAD_ROW = "a row with,three,fields\n"


def csv_files(tmp_path) -> tuple[list[InputFile], dict]:
    """A 2-column CSV with a header, multi-line quoted fields and one 3-field record (about 4 KiB), and a
    small one without a header -> (their InputFiles, {url: python csv's (line, fields) records after any header})."""
    lines = ["text,label\n"]
    for i in range(200):
        lines.append(f'"row {i}, ""quoted""\nsecond line",label {i % 4}\n' if i % 5 == 0 else f"row {i},label {i % 4}\n")
        if i == 41:
            lines.append(BAD_ROW)
    big = write_csv(tmp_path, "".join(lines), "big.csv")
    small = write_csv(tmp_path, "x,y\nz,w\n", "small.csv")
    files = [InputFile(str(big), big.stat().st_size, Dialect(","), "utf-8", True, 2),
             InputFile(str(small), small.stat().st_size, Dialect(","), "utf-8", False, 2)]
    records = {str(big): python_csv_records(big.read_text())[1:], str(small): python_csv_records(small.read_text())}
    return files, records


def rows_are(expected: list[tuple]):
    """A matcher: batches of at most TUNING.batch_rows rows whose (source_file, source_row, f0, f1) are `expected`."""
    def match(batches):
        assert all(b.num_rows <= TUNING.batch_rows and b.schema.names == ["f0", "f1", "source_file", "source_row"]
                   for b in batches)
        got = [(r["source_file"], r["source_row"], r["f0"], r["f1"]) for b in batches for r in b.to_pylist()]
        assert sorted(got) == sorted(expected)
    return match


def assert_read(p, flow: StageOutput, files: list[InputFile], records: dict):
    """Rows, the one dead letter (the 3-field record) and the counts of a ReadCsv flow over `files`."""
    good = [(url, line, *fields) for url, recs in records.items() for line, fields in recs if len(fields) == 2]
    bad_line = next(line for line, fields in records[files[0].url] if len(fields) == 3)
    assert_that(flow.main, rows_are(good), label="Rows")
    dead = (flow.dead_letters | "FlattenDead" >> beam.Flatten(pipeline=p)
            | beam.FlatMap(lambda b: [(d["source_file"], d["source_row"], d["stage"], d["reason_class"], d["raw"])
                                      for d in b.to_pylist()]))
    assert_that(dead, equal_to([(files[0].url, bad_line, "read", "field_count", BAD_ROW.rstrip("\n"))]), label="Dead")
    counts = flow.counts | "FlattenCounts" >> beam.Flatten(pipeline=p) | beam.CombineGlobally(SumCounts())
    assert_that(counts, equal_to([{
        "rows_read": len(good) + 1, "files_read": 2, "header_rows": 1, "bytes_read": sum(f.size for f in files),
        "dead_letters": 1, "dead_letters.read.field_count": 1}]), label="Counts")


def test_read_csv_cuts_files_into_ranges_and_reads_every_record_once(tmp_path):
    files, records = csv_files(tmp_path)
    ranges = plan_ranges(files[0], TUNING.range_bytes)
    assert len(ranges) >= 4 and not any(r.python_csv for r in ranges)  # really cut, on the fast path
    assert len(python_csv_records(open(files[0].url).read())) == 202  # header + 200 rows + the 3-field one
    progress = tmp_path / "progress"
    with TestPipeline() as p:
        flow = StageOutput.start(p | beam.Create(files)) | "Read" >> ReadCsv(TUNING, str(progress))
        assert_read(p, flow, files, records)
    markers = [json.loads(m.read_text()) for m in progress.glob("*.json")]
    assert len(markers) == len(ranges) + 1  # one per range of both files
    assert sum(m["rows"] for m in markers) == sum(len(r) for r in records.values()) and sum(m["bytes"] for m in markers) == sum(f.size for f in files)


def test_a_file_is_cut_into_a_multiple_of_four_ranges_of_about_equal_size(tmp_path):
    """2.5 ranges' worth of rows -> 4 ranges (3 would leave one of 2 workers a range alone), each about a
    quarter of the file and starting where a record starts; a file within one range stays whole."""
    text = "".join(f"row {i},label {i % 4}\n" for i in range(1000))
    path = write_csv(tmp_path, text)
    file = InputFile(str(path), path.stat().st_size, Dialect(","), "utf-8", False, 2)
    ranges = plan_ranges(file, math.ceil(file.size / 2.5))
    assert len(ranges) == 4 and not any(r.python_csv for r in ranges)
    sizes = [r.end - r.start for r in ranges]
    assert max(sizes) - min(sizes) <= len(ranges) * len("row 999,label 3\n")  # each cut waits for a line end
    assert all(text.encode()[r.start - 1:r.start] == b"\n" for r in ranges[1:])
    assert [r.first_line for r in ranges] == [1] + [text.encode()[:r.start].count(b"\n") + 1 for r in ranges[1:]]
    assert len(plan_ranges(file, file.size)) == 1


def test_read_csv_reads_ranges_planned_in_advance(tmp_path):
    files, records = csv_files(tmp_path)
    ranges = [r for f in files for r in plan_ranges(f, TUNING.range_bytes)]
    assert len(ranges) >= 5
    with TestPipeline() as p:
        flow = StageOutput.start(p | beam.Create(ranges)) | "Read" >> ReadCsv(TUNING, planned=True)
        assert_read(p, flow, files, records)


def test_source_rows_follow_multi_line_records_across_ranges(tmp_path):
    """Every record after a multi-line quoted one keeps the physical line it starts on, in every range."""
    files, records = csv_files(tmp_path)
    lines = {fields[0]: line for line, fields in records[files[0].url]}
    assert lines["row 1"] == 4 and lines["row 6"] == 10  # rows 0 and 5 span two lines each; line 1 is the header
    text = open(files[0].url).read()
    ranges = plan_ranges(files[0], TUNING.range_bytes)
    for r in ranges[1:]:  # each range starts on the line its first byte is on
        assert r.first_line == text.encode()[:r.start].count(b"\n") + 1


def test_a_record_over_the_tuning_limit_is_a_dead_letter_and_the_other_ranges_read(tmp_path):
    """ReadTuning.max_record_bytes reaches the parser: a 5 KB record with a 2 KiB limit, in a file cut into
    1 KiB ranges, is one record_too_large dead letter counted as a row read; every other row is read."""
    rows = [f"row {i},label {i % 4}\n" for i in range(300)]
    text = "".join(rows[:150]) + '"' + "x" * 5000 + '",long\n' + "".join(rows[150:])
    path = write_csv(tmp_path, text)
    file = InputFile(str(path), path.stat().st_size, Dialect(","), "utf-8", False, 2)
    tuning = ReadTuning(range_bytes=1024, batch_rows=7, max_record_bytes=2048)
    assert len(plan_ranges(file, tuning.range_bytes)) >= 4
    good = [(file.url, line, *fields) for line, fields in python_csv_records(text) if line != 151]
    with TestPipeline() as p:
        flow = StageOutput.start(p | beam.Create([file])) | "Read" >> ReadCsv(tuning)
        assert_that(flow.main, rows_are(good), label="Rows")
        dead = (flow.dead_letters | "FlattenDead" >> beam.Flatten(pipeline=p)
                | beam.FlatMap(lambda b: [(d["source_row"], d["reason_class"], d["raw"]) for d in b.to_pylist()]))
        assert_that(dead, equal_to([(151, "record_too_large", '"' + "x" * (RAW_PREFIX_BYTES - 1))]), label="Dead")
        counts = flow.counts | "FlattenCounts" >> beam.Flatten(pipeline=p) | beam.CombineGlobally(SumCounts())
        assert_that(counts, equal_to([{
            "rows_read": 301, "files_read": 1, "bytes_read": file.size,
            "dead_letters": 1, "dead_letters.read.record_too_large": 1}]), label="Counts")
