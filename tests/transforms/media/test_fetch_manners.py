"""The fetcher's manners against a real HTTP server on 127.0.0.1: the User-Agent, robots.txt, X-Robots-Tag,
per-host limits (measured by the server), the circuit breaker, the batch deadline and the fetch cache."""
import multiprocessing
import time

import pytest

from schemas.options import MediaOptions
from schemas.version import USER_AGENT
from transforms.media.fetch import fetch_all, fetch_one
from support.refusing_host import RefusingHost
from conftest import TEST_DATA


def options(tmp_path, **overrides) -> MediaOptions:
    """Fast options for loopback tests, with a fresh host-state folder (a run's)."""
    values = dict(timeout=2.0, retries=2, backoff=0.01, allow_private_network=True,
                  host_state=str(tmp_path / "hosts"))
    return MediaOptions(**{**values, **overrides})


@pytest.fixture
def server(http_server):
    images = sorted((TEST_DATA / "images").glob("*.jpg"))[:3]
    for i, path in enumerate(images):
        (http_server.root / f"{i}.jpg").write_bytes(path.read_bytes())
    (http_server.root / "private").mkdir()
    (http_server.root / "private" / "p.jpg").write_bytes(images[0].read_bytes())
    return http_server


def test_requests_name_the_tool_and_its_home_page(server, tmp_path):
    assert fetch_one(server.url("/files/0.jpg"), options(tmp_path)).error is None
    assert set(server.user_agents) == {USER_AGENT}  # robots.txt and the file
    assert USER_AGENT.startswith("finetune-etl/") and "(+http" in USER_AGENT
    fetch_one(server.url("/files/1.jpg"), options(tmp_path, user_agent="acme-etl/2.0 (+https://acme.test)"))
    assert server.user_agents[-1] == "acme-etl/2.0 (+https://acme.test)"


# --- robots.txt ------------------------------------------------------------------------------------


ROBOTS = "User-agent: finetune-etl\nDisallow: /files/private/\n\nUser-agent: *\nDisallow: /\n"


def test_robots_txt_is_read_once_per_host_and_honoured_for_our_user_agent(server, tmp_path):
    server.robots = (200, ROBOTS)
    urls = [server.url(f"/files/{i}.jpg") for i in range(3)] + [server.url("/files/private/p.jpg")]
    results = fetch_all(urls, options(tmp_path))
    assert [r.error is None for r in results] == [True, True, True, False]
    refused = results[3].error
    assert refused.reason_class == "robots_disallowed" and "robots.txt disallows it" in refused.reason
    assert server.hits["/files/private/p.jpg"] == 0 and server.hits["/robots.txt"] == 1
    # another process of the same run reads the shared copy, not the site
    fetch_one(server.url("/files/private/p.jpg"), options(tmp_path, host_state=str(tmp_path / "hosts")))
    assert server.hits["/robots.txt"] == 1


def test_robots_txt_rules_for_other_agents_and_the_wildcard(server, tmp_path):
    server.robots = (200, "User-agent: otherbot\nDisallow: /\n")
    assert fetch_one(server.url("/files/0.jpg"), options(tmp_path)).error is None
    server.robots = (200, "User-agent: *\nDisallow: /files/\n")
    result = fetch_one(server.url("/files/0.jpg"), options(tmp_path, host_state=str(tmp_path / "other-run")))
    assert result.error.reason_class == "robots_disallowed"


@pytest.mark.parametrize("status, allowed", [(404, True), (410, True), (403, True), (500, False), (503, False)])
def test_an_unreadable_robots_txt_allows_on_4xx_and_refuses_on_5xx(server, tmp_path, status, allowed):
    server.robots = (status, "User-agent: *\nDisallow: /\n")  # the body of an error answer is not rules
    result = fetch_one(server.url("/files/0.jpg"), options(tmp_path))
    assert (result.error is None) == allowed
    if not allowed:
        assert result.error.reason_class == "robots_disallowed" and f"HTTP {status}" in result.error.reason
        assert server.hits["/files/0.jpg"] == 0


def test_ignore_opt_outs_neither_reads_robots_txt_nor_honours_tags(server, tmp_path):
    server.robots = (200, "User-agent: *\nDisallow: /\n")
    result = fetch_one(server.url("/tagged/0.jpg?tag=noai"), options(tmp_path, ignore_opt_outs=True))
    assert result.error is None and server.hits["/robots.txt"] == 0


# --- X-Robots-Tag ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tag, refused", [
    ("noai", True), ("noimageai", True), ("noml", True), ("none", True), ("NoAI", True),
    ("noindex, noai", True), ("finetune-etl: noimageai", True), ("otherbot: noai", False),
    ("noindex", False), ("nofollow, noarchive", False), ("otherbot: noai, finetune-etl: noml", True),
    ("unavailable_after: 25 Jun 2030 15:00:00 PST", False),
])
def test_x_robots_tag_opt_outs_are_honoured(server, tmp_path, tag, refused):
    result = fetch_one(server.url(f"/tagged/0.jpg?tag={tag}"), options(tmp_path))
    assert (result.error is not None) == refused
    if refused:
        assert result.error.reason_class == "opted_out" and "X-Robots-Tag" in result.error.reason


# --- per-host limits -------------------------------------------------------------------------------


def test_requests_in_flight_per_host_never_exceed_the_limit(server, tmp_path):
    urls = [server.url(f"/files/0.jpg?delay=0.1&n={i}") for i in range(24)]
    results = fetch_all(urls, options(tmp_path, concurrency=16, per_host_concurrency=3))
    assert all(r.error is None for r in results)
    assert server.max_in_flight == 3


def _fetch_in_a_process(urls, media):
    return [r.error is None for r in fetch_all(urls, media)]


def test_the_limit_holds_across_processes_of_one_run(server, tmp_path):
    media = options(tmp_path, concurrency=8, per_host_concurrency=2)
    halves = [[server.url(f"/files/1.jpg?delay=0.1&p={p}&n={i}") for i in range(10)] for p in range(2)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        loaded = pool.starmap(_fetch_in_a_process, [(half, media) for half in halves])
    assert all(all(ok) for ok in loaded)
    assert server.max_in_flight == 2



def test_a_host_that_fails_every_connection_is_given_up_after_the_threshold(tmp_path):
    host = RefusingHost()
    urls = [host.url(f"img-{i}.jpg") for i in range(300)]
    started = time.monotonic()
    results = fetch_all(urls, options(tmp_path, retries=3, backoff=0.2, concurrency=16, per_host_concurrency=4,
                                      host_failure_threshold=5))
    elapsed = time.monotonic() - started
    host.close()
    classes = [r.error.reason_class for r in results]
    assert set(classes) <= {"connection_error", "host_unreachable"}
    assert classes.count("host_unreachable") >= 290
    # at most the threshold plus the requests already in flight when it was reached (robots.txt included)
    assert host.connections <= 5 + 4
    unreachable = next(r.error for r in results if r.error.reason_class == "host_unreachable")
    assert "given up for this run after 5 consecutive" in unreachable.reason
    assert elapsed < 30  # the bound; one by one, with retries, it would take minutes


def test_successes_reset_the_count_of_consecutive_failures(server, tmp_path):
    media = options(tmp_path, retries=0, host_failure_threshold=2)
    for _ in range(3):
        assert fetch_one(server.url("/files/0.jpg"), media).error is None
        assert fetch_one(server.url("/slow?seconds=1"), options(tmp_path, retries=0, host_failure_threshold=2,
                                                                 timeout=0.2)).error.reason_class == "timeout"
    assert fetch_one(server.url("/files/1.jpg"), media).error is None  # never two failures in a row


# --- the batch deadline ----------------------------------------------------------------------------


def test_a_slow_file_is_handed_back_at_the_batch_deadline_while_the_others_load(server, tmp_path):
    urls = [server.url("/slow?seconds=20"), server.url("/files/0.jpg"), server.url("/files/1.jpg")]
    started = time.monotonic()
    results = fetch_all(urls, options(tmp_path, timeout=30, batch_deadline=1.0))
    assert time.monotonic() - started < 10
    assert results[0].error.reason_class == "timeout" and "--batch-deadline 1s" in results[0].error.reason
    assert [r.error for r in results[1:]] == [None, None]
    # the slow fetch may still hold a thread of the batch's pool: the next batch gets threads of its own
    later = fetch_all([server.url(f"/files/{i}.jpg") for i in range(2)], options(tmp_path, concurrency=1))
    assert [r.error for r in later] == [None, None]
    assert time.monotonic() - started < 10


# --- the fetch cache -------------------------------------------------------------------------------


def test_the_cache_revalidates_with_conditional_requests(server, tmp_path):
    media = options(tmp_path, cache=str(tmp_path / "cache"))
    first = fetch_one(server.url("/cached/0.jpg"), media)
    assert first.error is None and first.source == "network" and server.not_modified == 0
    second = fetch_one(server.url("/cached/0.jpg"), media)
    assert (second.data, second.source, server.not_modified) == (first.data, "revalidated", 1)
    assert server.hits["/cached/0.jpg"] == 2
    (server.root / "0.jpg").write_bytes((server.root / "1.jpg").read_bytes())  # the file changes on the server
    third = fetch_one(server.url("/cached/0.jpg"), media)
    assert third.source == "network" and third.data == (server.root / "1.jpg").read_bytes()
    assert fetch_one(server.url("/cached/0.jpg"), media).source == "revalidated"  # the new bytes were kept


def test_within_max_age_the_cache_is_trusted_without_a_request(server, tmp_path):
    media = options(tmp_path, cache=str(tmp_path / "cache"), cache_max_age=3600)
    first = fetch_one(server.url("/files/0.jpg"), media)
    again = fetch_one(server.url("/files/0.jpg"), media)
    assert (again.data, again.source, again.attempts) == (first.data, "cache", 0)
    assert server.hits["/files/0.jpg"] == 1


def test_a_damaged_cache_entry_is_a_miss(server, tmp_path):
    media = options(tmp_path, cache=str(tmp_path / "cache"), cache_max_age=3600)
    first = fetch_one(server.url("/files/0.jpg"), media)
    for stored in (tmp_path / "cache").rglob("*.bin"):
        stored.write_bytes(b"damaged")
    again = fetch_one(server.url("/files/0.jpg"), media)
    assert (again.data, again.source) == (first.data, "network")


def test_the_cache_lives_in_a_bucket(server, tmp_path, gcs):
    media = options(tmp_path, cache=gcs.url("fetch-cache"))
    first = fetch_one(server.url("/cached/2.jpg"), media)
    second = fetch_one(server.url("/cached/2.jpg"), media)
    assert first.source == "network" and (second.source, second.data) == ("revalidated", first.data)
    assert server.not_modified == 1
