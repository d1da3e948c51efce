"""Fetch the bytes of the media files a CSV names: local paths, file://, http(s):// and any fsspec URL.

Pure functions, no Beam, that never raise: a failure is a `Fetched` whose error is a MediaError.
Safety: local paths are resolved (symlinks, `..`) before the --allowed-roots check and must be regular
files; before every http(s) hop the host is resolved, non-public addresses are refused unless
--allow-private-network, and the connection goes to the address checked (no second DNS answer). fsspec
URLs are limited to object stores and to network filesystems (ftp, sftp, ...) whose host is checked alike.
Manners (http(s)): every request names us (--user-agent); robots.txt and X-Robots-Tag opt-outs are honoured
(robots.py); requests in flight per host are limited and a host that keeps failing is given up for the run
(host_limits.py); a batch's files still unfetched at its deadline are handed back as timeouts. With --cache,
http(s) bytes are kept between runs and revalidated with conditional requests (fetch_cache.py).
"""
import concurrent.futures
import contextlib
import dataclasses
import functools
import http.client
import ipaddress
import os
import socket
import stat
import threading
import time
import zlib
from typing import Optional
from urllib.parse import urljoin

import fsspec
import urllib3
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from schemas.options import MediaOptions
from transforms.media.errors import MediaError
from transforms.media.fetch_cache import FetchCache
from transforms.media.host_limits import HostGiveUp, HostLimits, host_key
from transforms.media.robots import ROBOTS_MAX_BYTES, RobotsRules, opt_out

MAX_URI_CHARS = 8192
MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 10.0  # seconds: a longer Retry-After waits this long, then tries again
CHUNK_BYTES = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
# fsspec schemes media may use: object stores (the URL names a bucket or account, not a host), and network
# filesystems whose URL names a host, which is address-checked like an http host. Other schemes wrap
# other files (tar, zip, reference, caches, dir) or need options a URI cannot carry: refused.
OBJECT_STORES = ("gs", "gcs", "s3", "s3a", "az", "abfs", "abfss", "adl", "oci", "oss", "hf", "memory")
HOSTED = ("ftp", "sftp", "ssh", "smb", "webdav", "webhdfs", "hdfs", "dbfs")


@dataclasses.dataclass(frozen=True)
class Fetched:
    """One URI's bytes (data) or why there are none (error); attempts counts tries (0: never tried);
    source says where the bytes came from: network, cache (trusted within --cache-max-age) or revalidated
    (the server answered 304 Not Modified to a cached entry)."""

    uri: str
    data: Optional[bytes]
    error: Optional[MediaError]
    attempts: int
    source: str = "network"


class _Transient(MediaError):
    """A failure worth another try: connection error, timeout, truncated body, 429, 5xx."""

    def __init__(self, reason_class: str, reason: str, retry_after: Optional[float] = None):
        super().__init__(reason_class, reason)
        self.retry_after = retry_after


def fetch_all(uris: list[str], options: MediaOptions) -> list[Fetched]:
    """URIs -> one Fetched per URI, in input order; each distinct URI is fetched once, up to
    options.concurrency at a time (threads: the work is waiting on disks and networks). URIs still unfetched
    after options.batch_deadline seconds are `timeout` failures (their threads stop at their next retry)."""
    distinct = list(dict.fromkeys(uris))
    given_up = threading.Event()
    queue, taking, fetched = iter(distinct), threading.Lock(), {}

    def fetch_queued() -> None:
        while not given_up.is_set():
            with taking:
                uri = next(queue, None)
            if uri is None:
                return
            fetched[uri] = fetch_one(uri, options, given_up)

    pool = _fetchers(options.concurrency)
    fetchers = [pool.submit(fetch_queued) for _ in range(max(1, min(options.concurrency, len(distinct))))]
    _, unfinished = concurrent.futures.wait(fetchers, timeout=options.batch_deadline)
    given_up.set()
    fetched = dict(fetched)  # what came in time
    if unfinished:  # their threads may hang on: later batches get fresh ones
        _retire_fetchers(options.concurrency, pool)
    late = MediaError("timeout", f"not fetched within --batch-deadline {options.batch_deadline:g}s (a slow host or "
                                 "disk); the rest of its batch went on. Re-run to retry it, or raise --batch-deadline")
    return [fetched.get(uri) or Fetched(uri, None, late, 1) for uri in uris]


_fetch_pools: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_fetch_pools_lock = threading.Lock()


def _fetchers(concurrency: int) -> concurrent.futures.ThreadPoolExecutor:
    """The process's fetching threads: `concurrency` per core (each core's worker thread fetches one batch at
    a time, with `concurrency` of them), started as needed and kept between batches (starting 16 threads per
    32-row batch cost as much CPU as reading the files)."""
    with _fetch_pools_lock:
        if concurrency not in _fetch_pools:
            _fetch_pools[concurrency] = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(1, concurrency) * (os.cpu_count() or 1), thread_name_prefix="fetch")
        return _fetch_pools[concurrency]


def _retire_fetchers(concurrency: int, pool: concurrent.futures.ThreadPoolExecutor) -> None:
    """Leave `pool` to the fetches still hanging in it (they stop at their next retry) and to other batches'
    fetchers already queued in it; later batches get fresh threads."""
    with _fetch_pools_lock:
        if _fetch_pools.get(concurrency) is pool:
            del _fetch_pools[concurrency]
    pool.shutdown(wait=False)


def fetch_one(uri: str, options: MediaOptions, given_up: Optional[threading.Event] = None) -> Fetched:
    """One URI -> Fetched; never raises. `given_up` set: the caller stopped waiting (no more retries).

    Local paths, file:// and local:// URLs are read from disk; http(s):// with urllib3 (redirects,
    address checks, retries and manners are ours); any other scheme through fsspec. --no-fetch-remote skips
    http(s) and fsspec URLs, except memory:// which lives in this process and so counts as local.
    """
    given_up = given_up or threading.Event()
    try:
        kind, target = _route(uri, options)
    except MediaError as error:
        return Fetched(uri, None, error, 0)
    try:
        if kind == "local":
            return Fetched(uri, _read_local(target, options), None, 1)
        if kind == "http":
            return _fetch_http(uri, options, given_up)
        return _with_retries(uri, lambda u, o: (_read_fsspec(u, o), "network"), options, given_up)
    except MediaError as error:
        return Fetched(uri, None, error, 1)
    except Exception as error:  # a bug or an OS oddity must become a dead letter, not a failed bundle
        return Fetched(uri, None, MediaError("fetch_error", f"unexpected {type(error).__name__}: {error}"), 1)


# IPv6 prefixes whose last 32 bits are an IPv4 address another host may route to: IPv4-translated
# (::ffff:0:a.b.c.d, RFC 2765), NAT64 (64:ff9b::/96 and 64:ff9b:1::/48), and IPv4-compatible (::a.b.c.d).
_EMBEDS_IPV4 = tuple(ipaddress.ip_network(n) for n in ("::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "::/96"))


def is_public_address(address: str) -> bool:
    """True for an IP address that is routable on the internet: not private, loopback, link-local,
    multicast, reserved, shared (100.64/10) or unspecified, nor an IPv6 form that embeds such an IPv4
    (mapped, 6to4, translated, NAT64, compatible)."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and int(ip) > 1 and any(ip in network for network in _EMBEDS_IPV4):  # :: and ::1 stay IPv6
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(str(embedded))
    return ip.is_global and not ip.is_multicast


def _route(uri: str, options: MediaOptions) -> tuple[str, str]:
    """URI -> ("local", path) | ("http", url) | ("fsspec", url); MediaError when it is not fetched at all."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_CHARS:
        raise MediaError("bad_uri", f"is not a usable URI (empty, not text, or over {MAX_URI_CHARS} characters)")
    if "://" not in uri:
        return "local", uri
    scheme = uri.split("://", 1)[0].lower()
    remote_skipped = MediaError("remote_skipped", "is remote and --no-fetch-remote is set; drop that flag to fetch it")
    if scheme in ("http", "https"):
        if not options.fetch_remote:
            raise remote_skipped
        return "http", uri
    if "::" in uri:  # fsspec chaining (simplecache::, zip::) could reach local files or private hosts
        raise MediaError("bad_uri", "is a chained fsspec URL ('::'), which media URIs may not use")
    try:
        filesystem = fsspec.get_filesystem_class(scheme)
    except (ValueError, ImportError) as error:
        raise MediaError("bad_uri", f"has a scheme {scheme}:// that no installed filesystem handles ({error})") from None
    if issubclass(filesystem, LocalFileSystem):
        host, _, path = uri.split("://", 1)[1].partition("/")
        if host.lower() not in ("", "localhost"):
            raise MediaError("bad_uri", f"is a file:// URL of another host ({host!r}); only file:///PATH and "
                                        "file://localhost/PATH name files on this machine")
        return "local", filesystem._strip_protocol("file:///" + path)  # fsspec's reading of it (no %-decoding)
    if scheme not in OBJECT_STORES + HOSTED:
        raise MediaError("bad_uri", f"has a scheme {scheme}:// that media are not read from (it wraps other files "
                                    "or needs options a URI cannot carry); use a local path, http(s):// or an "
                                    "object store such as gs:// or s3://")
    if not options.fetch_remote and not issubclass(filesystem, MemoryFileSystem):
        raise remote_skipped
    if scheme in HOSTED:
        parts = _parse(uri)
        _checked_addresses(parts.host, parts.port or 0, options)
    return "fsspec", uri


def _with_retries(uri: str, read, options: MediaOptions, given_up: threading.Event) -> Fetched:
    """Call read(uri, options) until it returns (bytes, source), raises a final MediaError, or retries run
    out; no retry once `given_up` is set."""
    attempts = options.retries + 1
    for attempt in range(attempts):
        try:
            data, source = read(uri, options)
            return Fetched(uri, data, None, attempt + 1, source)
        except _Transient as error:
            last = error
            if attempt + 1 < attempts and given_up.wait(_delay(uri, attempt, options, error.retry_after)):
                return Fetched(uri, None, error, attempt + 1)
        except MediaError as error:
            return Fetched(uri, None, error, attempt + 1)
    reason = f"{last.reason} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
    return Fetched(uri, None, MediaError(last.reason_class, reason), attempts)


def _delay(uri: str, attempt: int, options: MediaOptions, retry_after: Optional[float]) -> float:
    """Seconds before the next try: the server's short Retry-After, else backoff * 2**attempt plus up to 10%
    jitter that is deterministic (from the URI and attempt) yet differs between URIs."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    jitter = (zlib.crc32(f"{uri}#{attempt}".encode()) % 1000) / 10_000
    return options.backoff * 2**attempt * (1 + jitter)


def _too_large(size: int, options: MediaOptions) -> MediaError:
    return MediaError("too_large", f"is {size} bytes or more, over --max-media-bytes {options.max_bytes}; "
                                   "raise --max-media-bytes to load it")


def _inside(real: str, roots: Optional[list[str]]) -> bool:
    """Whether a resolved path lies in one of the resolved roots (any path when there are none)."""
    return roots is None or any(os.path.commonpath([real, root]) == root for root in roots)


def _opened_path(descriptor: int, fallback: str) -> str:
    """Where an open file really is, as the kernel knows it (/proc/self/fd); `fallback` where /proc is missing."""
    try:
        return os.readlink(f"/proc/self/fd/{descriptor}")
    except OSError:
        return fallback


def _read_local(path: str, options: MediaOptions) -> bytes:
    """A local path -> its bytes, after the --allowed-roots and regular-file checks. Without roots the path
    is not resolved (links are followed by the kernel: resolving in Python costs a system call per part of
    the path, and only the roots check needs the real path)."""
    roots = None if options.allowed_roots is None else [os.path.realpath(root) for root in options.allowed_roots]
    try:
        real = os.path.abspath(path) if roots is None else os.path.realpath(path)
    except OSError as error:  # a link changed into a folder while it was resolved
        raise MediaError("unreadable", f"cannot be resolved: {error.strerror}") from None
    if not _inside(real, roots):
        raise MediaError("path_not_allowed", f"resolves to {real}, outside --allowed-roots "
                                             f"{','.join(options.allowed_roots)}; add its folder to --allowed-roots")
    try:
        info = os.stat(real)  # stat, not open: opening a FIFO would block until a writer comes
    except (FileNotFoundError, NotADirectoryError):
        raise MediaError("missing", f"no such file ({real})") from None
    except OSError as error:
        raise MediaError("unreadable", f"cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise MediaError("not_a_file", f"resolves to {real}, which is not a regular file (a folder, device or FIFO)")
    if info.st_size > options.max_bytes:
        raise _too_large(info.st_size, options)
    # O_NONBLOCK and the fstat guard against the file being swapped for a FIFO or device after the stat.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if roots is not None:  # the real path has no link left: one appearing now is a swap
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(real, flags)
    except OSError as error:
        raise MediaError("unreadable", f"cannot be read: {error.strerror}") from None
    with open(descriptor, "rb") as handle:
        opened = os.fstat(descriptor)
        if not stat.S_ISREG(opened.st_mode):
            raise MediaError("not_a_file", f"{real} changed into something that is not a regular file")
        # The file opened must be the file checked: a folder or link swapped between the check and the open
        # (a race with the path) could lead outside the roots. Checked on the descriptor itself, before reading.
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino) or (
                roots is not None and not _inside(_opened_path(descriptor, real), roots)):
            raise MediaError("path_not_allowed", f"{path} changed while it was opened (a folder or link was swapped); "
                                                 "it is not read")
        # Sized by the file: read(max_bytes + 1) would allocate (and the kernel zero) 64 MiB for every file.
        data = handle.read(min(opened.st_size, options.max_bytes) + 1)
        if len(data) > opened.st_size:  # it grew since the stat: read on, up to the limit
            data += handle.read(options.max_bytes + 1 - len(data))
    if len(data) > options.max_bytes:
        raise _too_large(len(data), options)
    return data


# fsspec filesystems have no common deadline (ftplib waits for a banner forever, gcsfs retries for a
# minute): each attempt runs on one of these threads and is given up after --fetch-timeout.
_FSSPEC_READERS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="fsspec-read")


def _read_fsspec(uri: str, options: MediaOptions) -> bytes:
    """Any fsspec URL (gs://, s3://, ftp://, memory://, ...) -> its bytes, within options.timeout seconds."""
    attempt = _FSSPEC_READERS.submit(_read_fsspec_now, uri, options)
    try:
        return attempt.result(timeout=options.timeout)
    except concurrent.futures.TimeoutError:
        attempt.cancel()
        raise _Transient("timeout", f"no answer within --fetch-timeout {options.timeout:g}s") from None


def _read_fsspec_now(uri: str, options: MediaOptions) -> bytes:
    """Any fsspec URL -> its bytes, reading at most max_bytes + 1 (no deadline of its own)."""
    try:
        filesystem, path = fsspec.core.url_to_fs(uri)
        info = filesystem.info(path)
        if info.get("type") == "directory":
            raise MediaError("not_a_file", "is a folder, not a file")
        if (info.get("size") or 0) > options.max_bytes:
            raise _too_large(info["size"], options)
        with filesystem.open(path, "rb") as handle:
            data = handle.read(options.max_bytes + 1)
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError("missing", "no such file") from None
    except PermissionError as error:
        raise MediaError("permission_denied", f"access denied: {error}") from None
    except Exception as error:
        raise _Transient("fetch_error", f"{type(error).__name__}: {error}") from None
    if len(data) > options.max_bytes:
        raise _too_large(len(data), options)
    return data


@functools.lru_cache(maxsize=None)
def _host_limits(folder: Optional[str], concurrency: int, threshold: int) -> HostLimits:
    return HostLimits(folder, concurrency, threshold)


@functools.lru_cache(maxsize=None)
def _robots_rules(folder: Optional[str]) -> RobotsRules:
    return RobotsRules(folder)


def _fetch_http(uri: str, options: MediaOptions, given_up: threading.Event) -> Fetched:
    """An http(s) URL -> Fetched, through the fetch cache when there is one: an entry younger than
    --cache-max-age is used as it is; an older one is revalidated (304: used; 200: replaced)."""
    cache = FetchCache(options.cache) if options.cache else None
    entry = cache.get(uri) if cache else None
    if entry is not None and options.cache_max_age is not None and time.time() - entry.stored_at <= options.cache_max_age:
        return Fetched(uri, entry.data, None, 0, "cache")
    asked = entry.conditional_headers() if entry is not None else {}
    answers = []
    fetched = _with_retries(uri, lambda u, o: _read_http(u, o, given_up, asked, answers), options, given_up)
    if cache is None or fetched.error is not None:
        return fetched
    headers = answers[-1]
    if fetched.source == "revalidated":
        cache.refresh(uri, entry, headers.get("ETag"), headers.get("Last-Modified"))
        return dataclasses.replace(fetched, data=entry.data)
    cache.put(uri, fetched.data, headers.get("ETag"), headers.get("Last-Modified"))
    return fetched


def _read_http(uri: str, options: MediaOptions, given_up: threading.Event, conditional: dict,
               answers: list) -> tuple[bytes, str]:
    """One attempt at an http(s) URL -> (body, "network"), or (b"", "revalidated") when the server answers
    304 to the `conditional` headers; follows at most MAX_REDIRECTS redirects, every hop address-checked and
    allowed by the host's robots.txt; the whole attempt is cut off after about options.timeout seconds.
    The final response's headers are appended to `answers`."""
    deadline = time.monotonic() + options.timeout
    url, seen = uri, {uri}
    for _ in range(MAX_REDIRECTS + 1):
        with _hop(url, options, deadline, given_up, conditional) as response:
            if response.status not in _REDIRECTS or not response.headers.get("Location"):
                _check_opt_outs(response, options)
                answers.append(response.headers)
                if response.status == 304 and conditional:
                    return b"", "revalidated"
                _check_status(response)
                return _read_body(response, options, deadline), "network"
        url = urljoin(url, response.headers["Location"])
        if not url.lower().startswith(("http://", "https://")):
            raise MediaError("bad_redirect", f"redirects to {url[:200]}, which is not http(s)")
        if url in seen:
            raise MediaError("redirect_loop", f"redirects in a loop back to {url[:200]}")
        seen.add(url)
    raise MediaError("redirect_loop", f"redirects more than {MAX_REDIRECTS} times")


@contextlib.contextmanager
def _hop(url: str, options: MediaOptions, deadline: float, given_up: threading.Event, extra_headers: dict,
         robots: bool = True):
    """One request -> its response (body unread) for the block, sent once the host is not given up, its
    robots.txt allows the URL (unless robots=False or --ignore-opt-outs) and one of its in-flight slots is
    free. Connection errors, timeouts and DNS failures count towards giving the host up."""
    parts = _parse(url)
    host, port, key = _host_of(parts)
    limits = _host_limits(options.host_state, options.per_host_concurrency, options.host_failure_threshold)
    _check_host(limits, key, host, options)
    if robots and not options.ignore_opt_outs:
        refusal = _robots_verdict(parts, url, options, given_up)
        if refusal is not None:
            raise MediaError("robots_disallowed", f"{refusal}; the file is not fetched (--ignore-opt-outs is for "
                                                  "your own servers)")
    headers = {"Host": parts.netloc, "Accept-Encoding": "identity", "User-Agent": options.user_agent, **extra_headers}
    if parts.auth:
        headers.update(urllib3.util.make_headers(basic_auth=parts.auth))
    try:
        with limits.slot(key, given_up.is_set):
            try:
                pool = _connection_pool(parts, host, port, options, deadline)
                with pool, _transport_errors(options):
                    response = pool.urlopen("GET", parts.request_uri, headers=headers, redirect=False,
                                            preload_content=False, assert_same_host=False)
                    try:
                        yield response
                    finally:
                        response.close()  # also the connection: the pool only closes the idle ones
            except MediaError as error:
                limits.record(key, failed=error.reason_class in ("connection_error", "timeout"), reason=error.reason)
                raise
            limits.record(key, failed=False)
    except HostGiveUp:
        _check_host(limits, key, host, options)
        raise MediaError("timeout", f"waited for a free connection to {host} past --batch-deadline "
                                    f"{options.batch_deadline:g}s (--per-host-concurrency "
                                    f"{options.per_host_concurrency})") from None


def robots_refusal(url: str, options: MediaOptions) -> Optional[str]:
    """Why its host's robots.txt forbids fetching an http(s) URL now (a sentence), or None: allowed, not
    http(s), --ignore-opt-outs, or robots.txt cannot be asked (the fetch itself would say why). For media a
    run takes from elsewhere (--incremental-from), so that a site's opt-out since then is honoured."""
    if options.ignore_opt_outs or not url.lower().startswith(("http://", "https://")):
        return None
    try:
        return _robots_verdict(_parse(url), url, options, threading.Event())
    except MediaError:
        return None


def _host_of(parts: urllib3.util.Url) -> tuple[str, int, str]:
    """A URL's parts -> (host, port, the host's key for limits and robots.txt)."""
    host, port = parts.host.strip("[]"), parts.port or (443 if parts.scheme == "https" else 80)
    return host, port, host_key(parts.scheme, host, port)


def _robots_verdict(parts: urllib3.util.Url, url: str, options: MediaOptions, given_up: threading.Event) -> Optional[str]:
    """Why the host's robots.txt (read once per host per run) forbids `url`, or None when it allows it."""
    return _robots_rules(options.host_state).refusal(
        _host_of(parts)[2], f"{parts.scheme}://{parts.netloc}/robots.txt", url, options.user_agent,
        lambda robots_url: _read_robots(robots_url, options, given_up))


def _check_host(limits: HostLimits, key: str, host: str, options: MediaOptions) -> None:
    """MediaError host_unreachable when the host was given up in this run."""
    reason = limits.down_reason(key)
    if reason is not None:
        raise MediaError("host_unreachable", f"host {host} was given up for this run after {reason} "
                                             f"(--host-failure-threshold {options.host_failure_threshold}); "
                                             "re-run later to retry these rows")


def _check_opt_outs(response, options: MediaOptions) -> None:
    """MediaError opted_out when the response's X-Robots-Tag opts out of AI use (unless --ignore-opt-outs)."""
    if options.ignore_opt_outs:
        return
    directive = opt_out(response.headers.getlist("X-Robots-Tag"), options.user_agent)
    if directive is not None:
        raise MediaError("opted_out", f"the server opts this file out with X-Robots-Tag: {directive}; it is not "
                                      "used (--ignore-opt-outs is for your own servers)")


def _read_robots(robots_url: str, options: MediaOptions, given_up: threading.Event) -> tuple[int, bytes]:
    """A host's /robots.txt -> (final HTTP status, at most ROBOTS_MAX_BYTES of its body), following redirects
    with every address check (one attempt; a transport failure raises)."""
    deadline = time.monotonic() + options.timeout
    url = robots_url
    for _ in range(MAX_REDIRECTS + 1):
        with _hop(url, options, deadline, given_up, {}, robots=False) as response:
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                return response.status, response.read(ROBOTS_MAX_BYTES) if 200 <= response.status < 300 else b""
        url = urljoin(url, location)
        if not url.lower().startswith(("http://", "https://")):
            return 404, b""  # RFC 9309: a robots.txt that cannot be reached by redirects is unavailable
    return 404, b""


def _connection_pool(parts: urllib3.util.Url, host: str, port: int, options: MediaOptions, deadline: float):
    """A URL's parts -> a one-connection pool to the address its host resolves to, once that is checked."""
    addresses = _checked_addresses(host, port, options)
    timeout = urllib3.Timeout(connect=_remaining(deadline, options), read=_remaining(deadline, options))
    common = dict(port=port, timeout=timeout, retries=False, maxsize=1)
    if parts.scheme == "https":  # certificate and SNI still check the host name, not the address
        return urllib3.HTTPSConnectionPool(addresses[0], server_hostname=host, **common)
    return urllib3.HTTPConnectionPool(addresses[0], **common)


def _parse(url: str) -> urllib3.util.Url:
    """A URL with a host -> its parts; MediaError bad_uri when it has none or does not parse."""
    try:
        parts = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError as error:
        raise MediaError("bad_uri", f"is not a valid URL: {error}") from None
    if not parts.host:
        raise MediaError("bad_uri", f"is a {parts.scheme}:// URL without a host")
    return parts


def _checked_addresses(host: str, port: int, options: MediaOptions) -> list[str]:
    """A host -> the addresses it resolves to, all public unless --allow-private-network (else MediaError)."""
    host = host.strip("[]")
    try:
        addresses = [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    except (socket.gaierror, UnicodeError) as error:
        retry = _Transient if getattr(error, "errno", None) == socket.EAI_AGAIN else MediaError
        raise retry("connection_error", f"cannot resolve host {host}: {error}") from None
    for address in addresses:
        if not options.allow_private_network and not is_public_address(address.split("%")[0]):
            raise MediaError("private_address", f"host {host} resolves to {address}, which is private, loopback, "
                                                "link-local or reserved; pass --allow-private-network to fetch from it")
    return addresses


def _remaining(deadline: float, options: MediaOptions) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Transient("timeout", f"took longer than --fetch-timeout {options.timeout}s")
    return left


@contextlib.contextmanager
def _transport_errors(options: MediaOptions):
    """urllib3 and socket exceptions inside the block -> MediaError (timeouts and resets are transient)."""
    try:
        yield
    except MediaError:
        raise
    except urllib3.exceptions.NewConnectionError as error:  # a subclass of TimeoutError, for history's sake
        raise _Transient("connection_error", f"cannot connect: {error}") from None
    except (urllib3.exceptions.TimeoutError, socket.timeout):
        raise _Transient("timeout", f"timed out (--fetch-timeout {options.timeout}s)") from None
    except urllib3.exceptions.SSLError as error:
        raise MediaError("tls_error", f"TLS failed: {error}") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        cause = error.args[-1] if error.args else None  # urllib3 wraps IncompleteRead in a ProtocolError
        if isinstance(cause, http.client.IncompleteRead):
            raise _Transient("truncated", f"the body ended early: {cause}") from None
        raise _Transient("connection_error", f"connection failed: {error}") from None


def _check_status(response) -> None:
    """A non-2xx answer -> MediaError `http_<code>`: transient for 408, 429 and 5xx, final otherwise."""
    status = response.status
    if 200 <= status < 300:
        return
    reason = f"the server answered HTTP {status} {response.reason or ''}".rstrip()
    if status in (408, 429) or status >= 500:
        retry_after = response.headers.get("Retry-After", "").strip()
        raise _Transient(f"http_{status}", reason, float(retry_after) if retry_after.isdigit() else None)
    raise MediaError(f"http_{status}", reason)


def _read_body(response, options: MediaOptions, deadline: float) -> bytes:
    """Stream a body, refusing a declared or actual size over max_bytes and a trickle past the deadline
    (a body shorter than its Content-Length raises IncompleteRead: urllib3's enforce_content_length)."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > options.max_bytes:
        raise _too_large(int(declared), options)
    chunks, size = [], 0
    while chunk := response.read1(CHUNK_BYTES):
        chunks.append(chunk)
        size += len(chunk)
        if size > options.max_bytes:
            raise _too_large(size, options)
        _remaining(deadline, options)
    return b"".join(chunks)
