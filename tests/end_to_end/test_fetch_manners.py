"""Whole prepare runs against loopback servers: a host that refuses every connection is given up fast, the
per-host limit holds across worker processes (measured by the server), robots.txt and X-Robots-Tag opt-outs
are dead letters counted apart, a slow file does not hold its batch, and two runs share a fetch cache."""
import io
import time

import pyarrow.parquet as pq
import pytest
from PIL import Image

import pipelines
from support.refusing_host import RefusingHost
from conftest import assert_reconciled, run_prepare

LOOPBACK = ("--allow-private-network",)


def photo(i: int) -> bytes:
    """A small JPEG whose pixels differ with i (distinct bytes: no two rows are one document)."""
    image = Image.new("RGB", (32, 24), ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256))
    image.putpixel((i % 32, (i // 32) % 24), (255 - (i % 256), 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def photos(http_server):
    for i in range(40):
        (http_server.root / f"p{i}.jpg").write_bytes(photo(i))
    return http_server


def labeled(urls) -> str:
    return "".join(f"{url},class-{i % 4}\n" for i, url in enumerate(urls))


def dead_classes(out) -> list[str]:
    return pipelines.load_dead_letters(str(out)).column("reason_class").to_pylist()



def test_2000_rows_on_a_host_that_fails_every_connection_finish_within_seconds(tmp_path, capsys):
    host = RefusingHost()
    started = time.monotonic()
    out = run_prepare(tmp_path, labeled(host.url(f"img/{i}.jpg") for i in range(2000)), "--is-labeled", *LOOPBACK)
    elapsed = time.monotonic() - started
    host.close()
    classes = dead_classes(out)
    assert len(classes) == 2000 and set(classes) <= {"connection_error", "host_unreachable"}
    assert classes.count("host_unreachable") >= 1950
    assert host.connections <= 10 + 8  # the default threshold + the requests in flight when it was reached
    assert elapsed < 30, elapsed  # the bound: one by one, with retries, this took minutes
    counts = assert_reconciled(out)
    assert counts["remote_files"] == 2000 and counts.get("remote_files_loaded", 0) == 0
    printed = capsys.readouterr().out
    assert "--no-fetch-remote" in printed and f"--incremental-from {out} --overwrite" in printed


def test_the_per_host_limit_holds_across_worker_processes(photos, tmp_path):
    urls = [photos.url(f"/files/p{i}.jpg?delay=0.1") for i in range(40)]
    out = run_prepare(tmp_path, labeled(urls), "--is-labeled", *LOOPBACK, "--per-host-concurrency", "3",
                      "--direct_num_workers", "2", "--direct_running_mode", "multi_processing")
    assert pipelines.load_table(str(out)).num_rows == 40
    assert photos.max_in_flight <= 3, photos.max_in_flight
    assert sum(n for path, n in photos.hits.items() if path.startswith("/files/")) == 40


def test_opt_outs_are_dead_letters_counted_apart_unless_ignored(photos, tmp_path):
    photos.robots = (200, "User-agent: finetune-etl\nDisallow: /files/p1.jpg\n")
    urls = [photos.url("/files/p0.jpg"), photos.url("/files/p1.jpg"), photos.url("/tagged/p2.jpg?tag=noai"),
            photos.url("/tagged/p3.jpg?tag=noimageai"), photos.url("/tagged/p4.jpg?tag=otherbot:%20noai")]
    out = run_prepare(tmp_path, labeled(urls), "--is-labeled", *LOOPBACK)
    assert sorted(dead_classes(out)) == ["opted_out", "opted_out", "robots_disallowed"]
    counts = assert_reconciled(out)
    assert (counts["dead_letters.media.robots_disallowed"], counts["dead_letters.media.opted_out"]) == (1, 2)
    assert pipelines.load_manifest(str(out))["opt_outs"] == "honoured"
    assert photos.hits["/files/p1.jpg"] == 0  # robots.txt is read before, not after

    ignored = run_prepare(tmp_path, labeled(urls), "--is-labeled", *LOOPBACK, "--ignore-opt-outs")
    assert pipelines.load_table(str(ignored)).num_rows == 5 and dead_classes(ignored) == []
    manifest = pipelines.load_manifest(str(ignored))
    assert manifest["opt_outs"].startswith("ignored") and manifest["options"]["media"]["ignore_opt_outs"] is True


def test_a_slow_file_does_not_hold_its_batch(photos, tmp_path):
    urls = [photos.url("/slow/stuck.jpg?seconds=30")] + [photos.url(f"/files/p{i}.jpg") for i in range(5)]
    started = time.monotonic()
    out = run_prepare(tmp_path, labeled(urls), "--is-labeled", *LOOPBACK, "--fetch-timeout", "60",
                      "--batch-deadline", "2")
    assert time.monotonic() - started < 25
    letters = pipelines.load_dead_letters(str(out)).to_pylist()
    assert [(d["source_row"], d["reason_class"]) for d in letters] == [(1, "timeout")]
    assert "--batch-deadline 2s" in letters[0]["reason"]
    assert pipelines.load_table(str(out)).num_rows == 5


def test_two_runs_sharing_a_cache_fetch_nothing_that_did_not_change(photos, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(labeled(photos.url(f"/cached/p{i}.jpg") for i in range(12)))
    cache = str(tmp_path / "cache")
    first = run_prepare(tmp_path, rows, "--is-labeled", *LOOPBACK, "--cache", cache)
    assert photos.not_modified == 0

    second = run_prepare(tmp_path, rows, "--is-labeled", *LOOPBACK, "--cache", cache)
    assert photos.not_modified == 12  # every file asked again, none sent again
    assert assert_reconciled(second)["cache_revalidated"] == 12
    documents = [pq.read_table(next((out / "documents").glob("*.parquet"))) for out in (first, second)]
    assert documents[0].equals(documents[1])

    hits = sum(photos.hits.values())
    third = run_prepare(tmp_path, rows, "--is-labeled", *LOOPBACK, "--cache", cache,
                        "--cache-max-age", "3600")
    assert sum(photos.hits.values()) == hits  # not one request: robots.txt neither
    assert assert_reconciled(third)["cache_hits"] == 12
    assert pipelines.load_table(str(third)).equals(pipelines.load_table(str(first)))
