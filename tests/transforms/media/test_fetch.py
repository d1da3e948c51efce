"""transforms/media/fetch.py against real files, a real FIFO and a real HTTP server on 127.0.0.1 (no mocks).

The server's hit counters show which failures are retried: a 404 is asked once, a 500 retries + 1 times.
"""
import os
import threading

import fsspec
import pytest

from schemas.options import MediaOptions
from transforms.media.fetch import MAX_URI_CHARS, Fetched, fetch_all, fetch_one, is_public_address
from conftest import TEST_DATA


IMAGES = TEST_DATA / "images"
RETRIES = 2


def options(**overrides) -> MediaOptions:
    """Fast options for loopback tests: 0.5 s timeout, 2 retries, 10 ms backoff, private network allowed."""
    values = dict(timeout=0.5, retries=RETRIES, backoff=0.01, allow_private_network=True)
    return MediaOptions(**{**values, **overrides})


@pytest.fixture
def image() -> bytes:
    """A real JPEG from tests/data/images."""
    return sorted(IMAGES.glob("*.jpg"))[0].read_bytes()


@pytest.fixture
def server(http_server, image):
    (http_server.root / "a.jpg").write_bytes(image)
    return http_server


def fetch(server, path: str, **overrides) -> Fetched:
    return fetch_one(server.url(path), options(**overrides))


# --- http(s) ---------------------------------------------------------------------------------------


def test_file_is_fetched_once(server, image):
    result = fetch(server, "/files/a.jpg")
    assert (result.data, result.error, result.attempts) == (image, None, 1)
    assert server.hits["/files/a.jpg"] == 1


@pytest.mark.parametrize("status, hits", [(404, 1), (403, 1), (410, 1), (418, 1), (408, RETRIES + 1),
                                          (500, RETRIES + 1), (503, RETRIES + 1)])
def test_status_is_retried_only_when_transient(server, status, hits):
    result = fetch(server, f"/status/{status}")
    assert result.data is None and result.error.reason_class == f"http_{status}"
    assert server.hits[f"/status/{status}"] == hits == result.attempts
    if hits > 1:
        assert f"gave up after {hits} attempts" in result.error.reason


def test_flaky_server_succeeds_on_the_third_try(server, image):
    result = fetch(server, "/flaky/2/a.jpg")
    assert result.data == image and result.attempts == 3
    assert server.hits["/flaky/2/a.jpg"] == 3


def test_429_is_retried_after_retry_after(server, image):
    result = fetch(server, "/429/a.jpg", backoff=10.0)  # Retry-After: 0 wins over the 10 s backoff
    assert result.data == image and server.hits["/429/a.jpg"] == 2


def test_slow_server_times_out_on_every_attempt(server):
    result = fetch(server, "/slow", retries=1)
    assert result.error.reason_class == "timeout" and server.hits["/slow"] == 2
    assert "gave up after 2 attempts" in result.error.reason


def test_trickle_is_cut_off_by_the_total_time_of_an_attempt(server):
    """Each byte comes well within the read timeout and the whole body in 10 s: only a deadline on the whole
    attempt makes it a timeout (without one, the body would arrive complete)."""
    result = fetch(server, "/trickle?every=0.05&bytes=200", retries=0)
    assert result.error.reason_class == "timeout"


def test_trickle_slower_than_the_read_timeout(server):
    result = fetch(server, "/trickle", retries=0)
    assert result.error.reason_class == "timeout"


def test_truncated_body_is_retried_then_reported(server):
    result = fetch(server, "/truncated/a.jpg")
    assert result.error.reason_class == "truncated"
    assert server.hits["/truncated/a.jpg"] == RETRIES + 1


def test_too_large_by_content_length_is_not_retried(server):
    result = fetch(server, "/big", max_bytes=10_000)
    assert result.error.reason_class == "too_large" and "--max-media-bytes" in result.error.reason
    assert server.hits["/big"] == 1


def test_too_large_while_streaming_without_content_length(server, image):
    assert fetch(server, "/stream/a.jpg").data == image
    assert fetch(server, "/stream/a.jpg", max_bytes=len(image) - 1).error.reason_class == "too_large"
    assert fetch(server, "/files/a.jpg", max_bytes=len(image) - 1).error.reason_class == "too_large"
    assert fetch(server, "/files/a.jpg", max_bytes=len(image)).data == image


def test_redirects_are_followed(server, image):
    assert fetch(server, "/redirect/files/a.jpg").data == image
    five_hops = "/redirect" * 5 + "/files/a.jpg"
    assert fetch(server, five_hops).data == image
    six_hops = fetch(server, "/redirect" + five_hops)
    assert six_hops.error.reason_class == "redirect_loop" and "more than 5" in six_hops.error.reason


def test_redirect_loop_is_detected_and_not_retried(server):
    result = fetch(server, "/loop")
    assert result.error.reason_class == "redirect_loop" and server.hits["/loop"] == 1


def test_redirect_to_another_scheme_is_refused(server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    result = fetch(server, f"/redirect?to=file://{secret}")
    assert result.error.reason_class == "bad_redirect" and result.data is None


def test_loopback_is_refused_before_any_request(server):
    result = fetch(server, "/files/a.jpg", allow_private_network=False)
    assert result.error.reason_class == "private_address" and "--allow-private-network" in result.error.reason
    assert sum(server.hits.values()) == 0


def test_localhost_name_is_refused_too(server):
    url = server.url("/files/a.jpg").replace("127.0.0.1", "localhost")
    result = fetch_one(url, options(allow_private_network=False))
    assert result.error.reason_class == "private_address" and sum(server.hits.values()) == 0


@pytest.mark.parametrize("address, public", [
    ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False),
    ("127.0.0.1", False), ("127.8.8.8", False), ("0.0.0.0", False), ("100.64.0.1", False),
    ("224.0.0.1", False), ("255.255.255.255", False), ("::1", False), ("::", False), ("fe80::1", False),
    ("fc00::1", False), ("ff02::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("2002:7f00:1::", False), ("8.8.8.8", True), ("1.1.1.1", True), ("2001:4860:4860::8888", True),
    ("::ffff:8.8.8.8", True),
    # IPv4-compatible, IPv4-translated and NAT64 forms of private addresses (were taken for public)
    ("::127.0.0.1", False), ("::ffff:0:7f00:1", False), ("64:ff9b::7f00:1", False), ("64:ff9b::a00:1", False),
    ("64:ff9b:1::a9fe:a9fe", False), ("::8.8.8.8", True), ("64:ff9b::808:808", True),
])
def test_address_policy(address, public):
    assert is_public_address(address) is public


def test_no_fetch_remote_skips_http_and_fsspec_but_not_memory(server):
    result = fetch(server, "/files/a.jpg", fetch_remote=False)
    assert result.error.reason_class == "remote_skipped" and result.attempts == 0
    assert sum(server.hits.values()) == 0
    assert fetch_one("gs://bucket/a.jpg", options(fetch_remote=False)).error.reason_class == "remote_skipped"
    fsspec.filesystem("memory").pipe("/fetch-test/skip.bin", b"here")
    assert fetch_one("memory://fetch-test/skip.bin", options(fetch_remote=False)).data == b"here"


@pytest.mark.parametrize("uri", ["http://127.0.0.1/" + "a" * MAX_URI_CHARS, "nosuch://x/y.jpg",
                                 "simplecache::memory://x/y.jpg", "http:///no-host.jpg", ""])
def test_bad_uri(uri):
    result = fetch_one(uri, options())
    assert result.error.reason_class == "bad_uri" and result.data is None


def test_connection_refused_is_retried(server):
    url = server.url("/files/a.jpg")
    server.shutdown()
    server.server_close()  # nothing listens on that port any more
    result = fetch_one(url, options())
    assert result.error.reason_class == "connection_error" and result.attempts == RETRIES + 1


# --- fetch_all -------------------------------------------------------------------------------------


def test_fetch_all_keeps_order_and_fetches_each_uri_once(server, image):
    a, missing = server.url("/files/a.jpg"), server.url("/status/404")
    results = fetch_all([a, missing, a], options())
    assert [r.uri for r in results] == [a, missing, a]
    assert [r.data for r in results] == [image, None, image]
    assert server.hits["/files/a.jpg"] == 1 and server.hits["/status/404"] == 1


def test_fetch_all_is_concurrent(server):
    urls = [server.url(f"/slow/{i}?seconds=0.2") for i in range(20)]
    results = fetch_all(urls, options(timeout=5.0, concurrency=16))
    assert all(r.data == b"slow" for r in results)
    assert server.max_in_flight >= 8


def test_fetch_all_respects_concurrency(server):
    urls = [server.url(f"/slow/{i}?seconds=0.05") for i in range(4)]
    assert all(r.data == b"slow" for r in fetch_all(urls, options(timeout=5.0, concurrency=1)))
    assert server.max_in_flight == 1


def test_batches_reuse_the_fetching_threads(tmp_path):
    paths = []
    for i in range(40):
        (tmp_path / f"{i}.bin").write_bytes(bytes([i]) * (i + 1))
        paths.append(str(tmp_path / f"{i}.bin"))

    before = set(threading.enumerate())  # other tests' fetching threads
    seen = set()  # the Thread objects themselves: an ident can be reused once a thread ends
    for batch in range(10):
        order = paths if batch % 2 == 0 else paths[::-1]
        results = fetch_all(order, options(concurrency=4))
        assert [r.data for r in results] == [open(p, "rb").read() for p in order]
        seen |= {t for t in threading.enumerate() if t.name.startswith("fetch_")} - before
    assert 0 < len(seen) <= 4 * (os.cpu_count() or 1)  # started once, not 4 per batch


def test_a_file_read_whole_however_its_size_compares_to_the_limit(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 1000)
    assert len(fetch_one(str(tmp_path / "f"), options(max_bytes=1000)).data) == 1000
    assert fetch_one(str(tmp_path / "f"), options(max_bytes=999)).error.reason_class == "too_large"


# --- local files ----------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path, image):
    """tmp_path/root/a.jpg (the image), tmp_path/secret.txt, and root/link -> ../secret.txt."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.jpg").write_bytes(image)
    (tmp_path / "secret.txt").write_text("password")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    return root


def test_local_path_and_file_url(tree, image):
    for uri in (str(tree / "a.jpg"), f"file://{tree / 'a.jpg'}"):
        result = fetch_one(uri, options(allowed_roots=(str(tree),)))
        assert (result.data, result.error, result.attempts) == (image, None, 1)


def test_local_files_do_not_need_fetch_remote(tree, image):
    assert fetch_one(str(tree / "a.jpg"), options(fetch_remote=False)).data == image


@pytest.mark.parametrize("name", ["../secret.txt", "link", "../root-sibling/x.jpg"])
def test_paths_outside_the_roots_are_refused(tree, name):
    result = fetch_one(f"{tree}/{name}", options(allowed_roots=(str(tree),)))
    assert result.error.reason_class == "path_not_allowed" and "--allowed-roots" in result.error.reason


def test_symlink_is_followed_when_any_path_is_allowed(tree):
    assert fetch_one(str(tree / "link"), options()).data == b"password"


def test_missing_local_file(tree):
    assert fetch_one(str(tree / "nope.jpg"), options(allowed_roots=(str(tree),))).error.reason_class == "missing"
    assert fetch_one(str(tree / "a.jpg" / "x"), options()).error.reason_class == "missing"


def test_local_too_large(tree, image):
    result = fetch_one(str(tree / "a.jpg"), options(max_bytes=len(image) - 1))
    assert result.error.reason_class == "too_large" and "--max-media-bytes" in result.error.reason


def _fetch_with_deadline(uri: str, seconds: float = 5.0) -> Fetched:
    """fetch_one in a daemon thread, so a regression that blocks (opening a FIFO) fails instead of hanging."""
    results = []
    thread = threading.Thread(target=lambda: results.append(fetch_one(uri, options())), daemon=True)
    thread.start()
    thread.join(seconds)
    assert results, f"fetch_one({uri!r}) blocked for {seconds} s"
    return results[0]


def test_fifo_device_and_folder_are_not_files(tmp_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    for uri in (str(fifo), "/dev/zero", str(tmp_path), f"file://{fifo}"):
        assert _fetch_with_deadline(uri).error.reason_class == "not_a_file", uri


# --- fsspec ---------------------------------------------------------------------------------------


def test_memory_filesystem(image):
    memory = fsspec.filesystem("memory")
    memory.pipe("/fetch-test/a.jpg", image)
    assert fetch_one("memory://fetch-test/a.jpg", options()).data == image
    assert fetch_one("memory://fetch-test/nope.jpg", options()).error.reason_class == "missing"
    assert fetch_one("memory://fetch-test", options()).error.reason_class == "not_a_file"
    too_large = fetch_one("memory://fetch-test/a.jpg", options(max_bytes=len(image) - 1))
    assert too_large.error.reason_class == "too_large" and too_large.attempts == 1


def test_file_localhost_names_a_file_on_this_machine_and_other_hosts_are_refused(tmp_path):
    """file://localhost/PATH means /PATH (it was read as CWD/localhost/PATH); file://host/PATH is not ours."""
    picture = tmp_path / "a.txt"
    picture.write_bytes(b"local bytes")
    assert fetch_one(f"file://localhost{picture}", options()).data == b"local bytes"
    assert fetch_one(f"file://LOCALHOST{picture}", options()).data == b"local bytes"
    refused = fetch_one(f"file://files.example{picture}", options())
    assert refused.error.reason_class == "bad_uri" and "another host" in refused.error.reason
