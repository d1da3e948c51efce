"""pipelines.prepare.job: the decisions made in the launcher before the pipeline starts."""
import dataclasses
import datetime
import math
import os

import pytest

from conftest import write_csv
from pipelines.prepare.inputs import FileDecision, InputPlan
from pipelines.prepare.job import (LINK_BYTES_PER_ROW, MEDIA_BYTES_PER_FILE, PrepareJob, check_output, new_run_id,
                                   plan_job, resolve_output)
from schemas.inputs import Dialect, InputFile
from schemas.options import ConfigError, CSVOptions, MediaOptions, OutputOptions, ReadTuning
from transforms.storage import write_bytes
from transforms.write.docarray import DocArrayShards
from transforms.write.parquet import ParquetShards

NOW = datetime.datetime(2024, 3, 5, 23, 59, tzinfo=datetime.timezone.utc)


def job(tmp_path, modalities=("text", "text"), sizes=(1000,), docarray=(), media=MediaOptions(), estimated_rows=10,
        fmt="both", bucket_bytes=64 * 1024 * 1024, layout="pairs") -> PrepareJob:
    """A PrepareJob made by hand (no file is read): CSV inputs of the given sizes, .docs inputs (url, size)."""
    files = tuple(InputFile(f"{tmp_path}/in-{i}.csv", size, Dialect(), "utf-8", False, len(modalities))
                  for i, size in enumerate(sizes))
    decisions = tuple(FileDecision(f.url, "a,b", False, "no cell is a column name", False, layout, modalities,
                                   "column 1 repeats like queries", False) for f in files)
    plan = InputPlan(files, layout, modalities, tuple(docarray), estimated_rows, decisions)
    return PrepareJob(plan, CSVOptions(), OutputOptions(str(tmp_path / "out"), format=fmt),
                      ReadTuning(bucket_bytes=bucket_bytes), "run-1", media)


# resolve_output

def test_resolve_output_fills_date_and_run_id():
    assert resolve_output("gs://b/{date}/ds-{run_id}", "r9", NOW) == "gs://b/2024-03-05/ds-r9"


def test_resolve_output_makes_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_output("data/{run_id}", "r9", NOW) == os.path.join(str(tmp_path), "data", "r9")
    assert resolve_output("/abs/./x/../y", "r9", NOW) == "/abs/y"


def test_resolve_output_leaves_urls_as_they_are():
    assert resolve_output("s3://bucket/a/../b/", "r", NOW) == "s3://bucket/a/../b/"
    assert resolve_output("memory://x/{date}", "r", NOW) == "memory://x/2024-03-05"


def test_new_run_ids_differ_and_sort_by_time():
    first, second = new_run_id(), new_run_id()
    assert first != second and first[:8] == second[:8] and len(first) == len("20240305T235900Z-") + 8


# check_output

def outputs(tmp_path, **kwargs) -> OutputOptions:
    return OutputOptions(str(tmp_path / "out"), **kwargs)


def staging(tmp_path) -> str:
    return str(tmp_path / ".out.staging-x")


def test_check_output_accepts_a_new_or_our_own_folder(tmp_path):
    check_output(outputs(tmp_path), staging(tmp_path))
    out = tmp_path / "out"
    for name in ("documents", "docarray", "dead_letters", "manifest.json", "_staging-old"):
        (out / name).mkdir(parents=True) if "." not in name else (out / name).write_text("{}")
    check_output(outputs(tmp_path), staging(tmp_path))


def test_check_output_refuses_a_complete_dataset_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "_SUCCESS").write_text("")
    with pytest.raises(ConfigError, match="already holds a complete dataset; pass --overwrite"):
        check_output(outputs(tmp_path), staging(tmp_path))
    check_output(outputs(tmp_path, overwrite=True), staging(tmp_path))


def test_check_output_refuses_a_file(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file; give a folder"):
        check_output(outputs(tmp_path, overwrite=True), staging(tmp_path))


def test_check_output_refuses_foreign_files_naming_three(tmp_path):
    """Even a file named like one of our folders is foreign: only what the manifest lists is ours."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("notes.txt", "a.csv", "zz", "b", "documents"):
        (out / name).write_text("")
    with pytest.raises(ConfigError, match=r"not part of a finetune-etl dataset \(a\.csv, b, documents and 2 more\)"):
        check_output(outputs(tmp_path), staging(tmp_path))


def test_check_output_refuses_foreign_files_at_a_url():
    url = f"memory://check-output-{new_run_id()}/out"
    write_bytes(b"x", f"{url}/other.bin")
    with pytest.raises(ConfigError, match="other.bin"):
        check_output(OutputOptions(url), f"{url}/_staging-x")


def test_check_output_refuses_an_unwritable_output(tmp_path):
    (tmp_path / "file").write_text("")
    blocked = OutputOptions(str(tmp_path / "file" / "out"))
    with pytest.raises(ConfigError, match="is not writable"):
        check_output(blocked, str(tmp_path / "file" / ".out.staging-x"))


# PrepareJob

def test_staging_is_a_hidden_sibling_of_a_local_output(tmp_path):
    assert job(tmp_path).staging == str(tmp_path / ".out.staging-run-1")


@pytest.mark.parametrize("fmt, writers", [("both", (ParquetShards, DocArrayShards)), ("parquet", (ParquetShards,)),
                                          ("docarray", (DocArrayShards,))])
def test_writers(tmp_path, fmt, writers):
    assert job(tmp_path, fmt=fmt).writers == writers


@pytest.mark.parametrize("modalities, docarray, media, loads", [
    (("text", "text"), (), MediaOptions(), False),
    (("text", "image"), (), MediaOptions(), True),
    (("text", "image"), (), MediaOptions(convert_to_blob=False), False),
    (("mesh",), (), MediaOptions(convert_to_blob=False), True),
    (("mesh",), (), MediaOptions(create_point_clouds=False), False),
    (("text",), (("x.docs", 10),), MediaOptions(), True),  # a .docs file may hold media of any kind
    (("text",), (("x.docs", 10),), MediaOptions(convert_to_blob=False, create_point_clouds=False), False),
])
def test_loads_media(tmp_path, modalities, docarray, media, loads):
    assert job(tmp_path, modalities=modalities, docarray=docarray, media=media).loads_media is loads


def test_buckets_hold_at_most_about_bucket_bytes_of_input_and_come_in_fours(tmp_path):
    assert job(tmp_path, sizes=(100,)).buckets == 1
    assert job(tmp_path, sizes=(100,), bucket_bytes=100).buckets == 1
    assert job(tmp_path, sizes=(101,), bucket_bytes=100).buckets == 4  # not 2: one worker of 4 would take both
    assert job(tmp_path, sizes=(300,), bucket_bytes=100).buckets == 4  # not 3: one worker of 2 would take two
    assert job(tmp_path, sizes=(600, 400), bucket_bytes=100).buckets == 12
    assert job(tmp_path, sizes=(600, 401), bucket_bytes=100).buckets == 12
    assert job(tmp_path, sizes=(50,), docarray=(("a.docs", 60),), bucket_bytes=100,
               media=MediaOptions(convert_to_blob=False, create_point_clouds=False)).buckets == 4


def test_buckets_count_media_when_media_load(tmp_path):
    media_job = job(tmp_path, modalities=("image", "text"), sizes=(100,), estimated_rows=3,
                    bucket_bytes=MEDIA_BYTES_PER_FILE)
    assert media_job.buckets == 4  # 3 rows of one image each, each image estimated at one bucket
    two_images = job(tmp_path, modalities=("image", "image"), sizes=(100,), estimated_rows=3,
                     bucket_bytes=MEDIA_BYTES_PER_FILE)
    assert two_images.buckets == 8
    text_job = dataclasses.replace(media_job, media=MediaOptions(convert_to_blob=False))
    assert text_job.buckets == 1


def test_a_mesh_counts_its_point_cloud_not_its_file(tmp_path):
    """Only the sampled points stay in a document: 10,000 meshes of 2,048 points are 246 MB, 4 buckets."""
    meshes = job(tmp_path, modalities=("mesh",), sizes=(100,), estimated_rows=10_000)
    assert meshes.media_bytes_per_row == 2048 * 12 and meshes.buckets == 4
    fewer_points = dataclasses.replace(meshes, media=MediaOptions(point_cloud_size=256))
    assert fewer_points.buckets == 1


def test_docarray_inputs_count_two_images_a_row(tmp_path):
    docs = job(tmp_path, modalities=("text",), sizes=(100,), docarray=(("a.docs", 10),), estimated_rows=3)
    assert docs.loads_media and docs.media_bytes_per_row == 2 * MEDIA_BYTES_PER_FILE


def test_link_partitions_hold_about_bucket_bytes_of_links_whatever_the_media(tmp_path):
    assert job(tmp_path, sizes=(100,), estimated_rows=1000).link_partitions == 1
    photos = job(tmp_path, modalities=("image", "text"), sizes=(100,), estimated_rows=10_000)
    assert photos.buckets == 40 and photos.link_partitions == 1  # photos fill buckets, not links
    many = job(tmp_path, sizes=(100,), estimated_rows=10**7, bucket_bytes=64 << 20)
    assert many.link_partitions == math.ceil(10**7 * LINK_BYTES_PER_ROW / (64 << 20)) == 20


def test_manifest_fields(tmp_path):
    j = job(tmp_path, modalities=("text", "image"), docarray=((f"{tmp_path}/x.docs", 7),))
    m = j.manifest()
    assert m["format_version"] == 1 and m["tool"].startswith("finetune-etl ") and m["run_id"] == "run-1"
    assert (m["layout"], m["clip"], m["modalities"]) == ("pairs", True, ["text", "image"])
    assert m["options"]["csv"] == dataclasses.asdict(CSVOptions())
    assert m["options"]["output"]["output"] == str(tmp_path / "out")
    assert m["options"]["media"]["point_cloud_size"] == MediaOptions().point_cloud_size
    assert m["inputs"] == [
        {"url": f"{tmp_path}/in-0.csv", "size": 1000, "delimiter": ",", "skipinitialspace": False,
         "encoding": "utf-8", "header": False, "fields": 2, "layout": "pairs", "modalities": ["text", "image"],
         "why": {"header": "no cell is a column name", "layout": "column 1 repeats like queries"}},
        {"url": f"{tmp_path}/x.docs", "size": 7, "format": "docarray"},
    ]
    assert job(tmp_path, modalities=("text", "text")).manifest()["clip"] is False


# plan_job

def test_plan_job_checks_the_format_before_reading_inputs(tmp_path):
    with pytest.raises(ConfigError, match="--format 'csv' is not one of"):
        plan_job([str(tmp_path / "missing.csv")], CSVOptions(), OutputOptions(str(tmp_path / "out"), format="csv"),
                 ReadTuning())
    assert list(tmp_path.iterdir()) == []


def test_plan_job_resolves_the_output_with_its_run_id(tmp_path, monkeypatch):
    source = write_csv(tmp_path, "hello,greeting\nbye,farewell\n")
    monkeypatch.chdir(tmp_path)
    planned = plan_job([str(source)], CSVOptions(), OutputOptions("out-{run_id}"), ReadTuning(), run_id="r1")
    assert planned.output.output == str(tmp_path / "out-r1") and planned.run_id == "r1"
    assert planned.staging == str(tmp_path / ".out-r1.staging-r1")
    assert (planned.inputs.layout, planned.inputs.modalities) == ("pairs", ("text", "text"))
    assert planned.manifest()["options"]["output"]["output"] == str(tmp_path / "out-r1")


def test_plan_job_checks_the_output(tmp_path):
    source = write_csv(tmp_path, "hello,greeting\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("")
    with pytest.raises(ConfigError, match="mine.txt"):
        plan_job([str(source)], CSVOptions(), OutputOptions(str(tmp_path / "out")), ReadTuning())
