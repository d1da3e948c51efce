"""Re-runs with --incremental-from: media found in a previous dataset are reused, not fetched again (the
loopback server's hit counts prove it), and the new dataset is byte for byte the one a run from scratch
over the same inputs writes (README, "Re-runs").

Images are small distinct PNGs drawn here; meshes are tests/data/meshes files. Both are served over HTTP
(`/files/<name>`); only those paths are counted (a fetcher may also ask a host for its robots.txt).
"""
import json
import random
import shutil
from pathlib import Path

from PIL import Image

import pipelines
from conftest import TEST_DATA, assert_reconciled, counts, dead_letters, write_csv
from pipelines.cli import main

HTTP = ("--allow-private-network", "--fetch-timeout", "2", "--fetch-retries", "0")
MESHES = ("box.obj", "cube.off", "bunny.ply", "cylinder.stl")


def draw_photos(folder: Path, names: list[str]) -> None:
    """One small PNG per name, each different from every other."""
    for name in names:
        rng = random.Random(name)
        image = Image.new("RGB", (24, 16), tuple(rng.randrange(256) for _ in range(3)))
        image.putpixel((rng.randrange(24), rng.randrange(16)), (rng.randrange(256), 0, 255))
        image.save(folder / name)


def labeled_csv(tmp_path: Path, server, names: list[str], csv_name: str) -> Path:
    return write_csv(tmp_path, "".join(f"{server.url('files/' + n)},label{i % 3}\n" for i, n in enumerate(names)),
                     csv_name)


def prepare(csv: Path, out, *args: str) -> int:
    return main(["prepare", "--input", str(csv), "--output", str(out), "--is-labeled", *HTTP, *args])


def file_hits(server) -> dict:
    """Requests per served file (robots.txt and other routes left out)."""
    return {path: n for path, n in server.hits.items() if path.startswith("/files/")}


def assert_same_documents(out: Path, scratch: Path) -> None:
    """The two datasets' documents/ shards have the same names and bytes, and hold the same table."""
    shards = sorted(p.name for p in (out / "documents").iterdir())
    assert shards == sorted(p.name for p in (scratch / "documents").iterdir())
    for name in shards:
        assert (out / "documents" / name).read_bytes() == (scratch / "documents" / name).read_bytes(), name
    assert pipelines.load_table(str(out)).equals(pipelines.load_table(str(scratch)))


def test_second_run_fetches_only_new_and_failed_rows_and_matches_a_run_from_scratch(tmp_path, http_server):
    old = [f"p{i:02d}.png" for i in range(20)]
    new = ["p20.png", "p21.png"]  # 10% new rows
    draw_photos(http_server.root, old + new)
    first_csv = labeled_csv(tmp_path, http_server, old + ["late.png"], "first.csv")  # late.png: 404 for now
    assert prepare(first_csv, tmp_path / "first") == 0
    late = http_server.url("files/late.png")
    assert [(d["stage"], d["raw"].split(",")[0]) for d in dead_letters(tmp_path / "first")] == [("media", late)]
    assert set(file_hits(http_server).values()) == {1}

    draw_photos(http_server.root, ["late.png"])  # the cause fixed
    second_csv = labeled_csv(tmp_path, http_server, old + ["late.png"] + new, "second.csv")
    assert prepare(second_csv, tmp_path / "second", "--incremental-from", str(tmp_path / "first")) == 0
    hits = file_hits(http_server)
    assert {p: n for p, n in hits.items() if n > 1} == {"/files/late.png": 2}  # the dead letter, fetched again
    assert {p for p in hits if hits[p] == 1} == {f"/files/{n}" for n in old + new}
    second = assert_reconciled(tmp_path / "second")
    assert second["documents_reused"] == 20 and second["media_files"] == 3 and second["documents_written"] == 23
    assert not dead_letters(tmp_path / "second")
    assert pipelines.load_manifest(str(tmp_path / "second"))["incremental"]["reused"] is True

    assert prepare(second_csv, tmp_path / "scratch") == 0
    assert set(file_hits(http_server).values()) == {2, 3}  # the run from scratch fetched every file
    assert_same_documents(tmp_path / "second", tmp_path / "scratch")


def test_a_file_its_site_opted_out_of_since_is_not_reused(tmp_path, http_server):
    names = [f"p{i}.png" for i in range(6)]
    draw_photos(http_server.root, names)
    csv = labeled_csv(tmp_path, http_server, names, "rows.csv")
    assert prepare(csv, tmp_path / "first") == 0
    http_server.robots = (200, "User-agent: finetune-etl\nDisallow: /files/p2.png\n")  # the site opts out
    assert prepare(csv, tmp_path / "second", "--incremental-from", str(tmp_path / "first")) == 0
    assert [(d["reason_class"], d["source_row"]) for d in dead_letters(tmp_path / "second")] == [
        ("robots_disallowed", 3)]
    assert counts(tmp_path / "second")["documents_reused"] == 5
    assert file_hits(http_server)["/files/p2.png"] == 1  # asked in the first run only
    assert prepare(csv, tmp_path / "scratch") == 0
    assert_same_documents(tmp_path / "second", tmp_path / "scratch")


def test_meshes_are_reused_with_their_point_clouds(tmp_path, http_server):
    for name in MESHES:
        shutil.copy(TEST_DATA / "meshes" / name, http_server.root / name)
    first_csv = labeled_csv(tmp_path, http_server, list(MESHES[:3]), "first.csv")
    assert prepare(first_csv, tmp_path / "first") == 0
    second_csv = labeled_csv(tmp_path, http_server, list(MESHES), "second.csv")
    assert prepare(second_csv, tmp_path / "second", "--incremental-from", str(tmp_path / "first")) == 0
    assert file_hits(http_server) == {f"/files/{n}": 1 for n in MESHES}
    assert counts(tmp_path / "second")["documents_reused"] == 3
    assert prepare(second_csv, tmp_path / "scratch") == 0
    table = pipelines.load_table(str(tmp_path / "second"))
    assert table.column("point_cloud").null_count == 0
    assert_same_documents(tmp_path / "second", tmp_path / "scratch")


def test_changed_media_options_reuse_nothing_and_say_so(tmp_path, http_server, capsys):
    names = [f"p{i}.png" for i in range(4)]
    draw_photos(http_server.root, names)
    csv = labeled_csv(tmp_path, http_server, names, "rows.csv")
    assert prepare(csv, tmp_path / "first") == 0
    capsys.readouterr()
    assert prepare(csv, tmp_path / "second", "--image-size", "8", "--incremental-from", str(tmp_path / "first")) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "--incremental-from" in line]
    assert notes == [f"finetune-etl: --incremental-from {tmp_path / 'first'}: reusing nothing: its media options "
                     "differ from this run's (image_size: None there, 8 here)."]
    assert set(file_hits(http_server).values()) == {2}
    assert "documents_reused" not in counts(tmp_path / "second")
    incremental = pipelines.load_manifest(str(tmp_path / "second"))["incremental"]
    assert incremental["reused"] is False and "image_size" in incremental["not_reused_because"]


def test_a_folder_that_is_not_a_complete_dataset_stops_the_run_with_one_line(tmp_path, capsys):
    csv = write_csv(tmp_path, "a.png,x\n")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "manifest.json").write_text(json.dumps({"tool": "finetune-etl 0.1.0", "shards": {}}))
    for folder in (tmp_path / "missing", unfinished):  # no _SUCCESS in either
        assert prepare(csv, tmp_path / "out", "--incremental-from", str(folder)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"finetune-etl: error: --incremental-from {str(folder)!r} is not a complete dataset (a "
                       "finished run leaves manifest.json and _SUCCESS there); give the folder of a dataset "
                       "finetune-etl prepare finished."]
    assert not (tmp_path / "out").exists()


def test_a_nightly_rerun_into_the_same_folder_reuses_it(tmp_path, http_server):
    names = [f"p{i}.png" for i in range(6)]
    draw_photos(http_server.root, names + ["new.png"])
    out = tmp_path / "nightly"
    assert prepare(labeled_csv(tmp_path, http_server, names, "day1.csv"), out) == 0
    day2 = labeled_csv(tmp_path, http_server, names + ["new.png"], "day2.csv")
    assert prepare(day2, out, "--overwrite", "--incremental-from", str(out)) == 0
    assert set(file_hits(http_server).values()) == {1}
    assert assert_reconciled(out)["documents_reused"] == 6
    assert prepare(day2, tmp_path / "scratch") == 0
    assert_same_documents(out, tmp_path / "scratch")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left


def test_a_nightly_rerun_into_the_same_bucket_reuses_it(tmp_path, http_server, gcs):
    names = [f"p{i}.png" for i in range(4)]
    draw_photos(http_server.root, names + ["new.png"])
    out = gcs.url("nightly")
    assert prepare(labeled_csv(tmp_path, http_server, names, "day1.csv"), out) == 0
    day2 = labeled_csv(tmp_path, http_server, names + ["new.png"], "day2.csv")
    assert prepare(day2, out, "--overwrite", "--incremental-from", out) == 0
    assert set(file_hits(http_server).values()) == {1}
    manifest = pipelines.load_manifest(out)
    assert manifest["counts"]["documents_reused"] == 4 and manifest["reconciliation"]["reconciled"]
    assert prepare(day2, tmp_path / "scratch") == 0
    assert pipelines.load_table(out).equals(pipelines.load_table(str(tmp_path / "scratch")))
    shards = [gcs.fs.cat(f"{out.removeprefix('gs://')}/{shard['path']}") for shard in manifest["shards"]["documents"]]
    assert shards == [p.read_bytes() for p in sorted((tmp_path / "scratch" / "documents").iterdir())]
