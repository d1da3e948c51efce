"""A real threaded HTTP server on 127.0.0.1 for tests that fetch media, with misbehaving routes.

Use the `http_server` fixture (registered for every test module by tests/conftest.py): it serves the
files put in `server.root` and counts every request per path (query included) in `server.hits`.

Routes (n, name and seconds are parts of the path or query):
  /files/<name>[?delay=S]  the file root/<name> (404 when missing), after S seconds (default 0)
  /stream/<name>           the same file without a Content-Length (the body ends when the connection closes)
  /status/<code>[/<name>]  always that status
  /flaky/<n>/<name>        500 for the first n requests of this path, then the file
  /429/<name>              429 with Retry-After: 0 on the first request, then the file
  /slow[/<tag>]?seconds=S  sleeps S seconds (default: server.slow_seconds) before answering "slow"
  /trickle?every=S&bytes=N sends N bytes (default 100), one every S seconds (default 1)
  /truncated/<name>        declares the file's full Content-Length, sends half and closes
  /redirect/<target>       302 to /<target> (which may itself be a /redirect/...)
  /redirect?to=<url>       302 to that URL
  /loop                    302 to itself
  /big                     declares a Content-Length of 10**12, sends 1 KiB and closes
  /tagged/<name>?tag=T     the file with the header `X-Robots-Tag: T`
  /cached/<name>           the file with an ETag and a Last-Modified; 304 when the request's If-None-Match or
                           If-Modified-Since says the client has it (counted in server.not_modified)
  /robots.txt              server.robots = (status, text) when set, else 404
Every request's User-Agent is kept in server.user_agents.
"""
import collections
import email.utils
import hashlib
import http.server
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "LoopbackHTTPServer"

    def do_GET(self):
        server = self.server
        with server.lock:
            server.hits[self.path] += 1
            server.hit_times[self.path].append(time.monotonic())
            hits = server.hits[self.path]
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            server.user_agents.append(self.headers.get("User-Agent"))
        self._counted = True
        try:
            self._route(urlsplit(self.path), hits)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer
        finally:
            self._answering()

    def _answering(self):
        """The request stops counting as in flight just before its answer is sent: a client cannot have
        finished (and sent its next request) before that, so max_in_flight never counts one request twice."""
        if self._counted:
            self._counted = False
            with self.server.lock:
                self.server.in_flight -= 1

    def _route(self, url, hits: int):
        parts = [p for p in url.path.split("/") if p]
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        route, rest = (parts[0] if parts else ""), "/".join(parts[1:])
        if route == "files":
            time.sleep(float(query.get("delay", 0)))
            self._file(rest)
        elif route == "stream":
            self._file(rest, length=False)
        elif route == "status":
            code = rest.split("/", 1)[0]  # /status/404/name.jpg: the name only gives the URL an extension
            self._send(int(code), b"status %s" % code.encode())
        elif route == "flaky":
            n, _, name = rest.partition("/")
            self._send(500, b"flaky") if hits <= int(n) else self._file(name)
        elif route == "429":
            self._send(429, b"slow down", {"Retry-After": "0"}) if hits == 1 else self._file(rest)
        elif route == "slow":
            time.sleep(float(query.get("seconds", self.server.slow_seconds)))
            self._send(200, b"slow")
        elif route == "trickle":
            self._trickle(float(query.get("every", 1.0)), int(query.get("bytes", 100)))
        elif route == "truncated":
            data = self._data(rest)
            if data is not None:
                self._head(200, {"Content-Length": str(len(data))})
                self.wfile.write(data[: len(data) // 2])
        elif route == "redirect":
            self._send(302, b"", {"Location": query.get("to") or "/" + rest})
        elif route == "loop":
            self._send(302, b"", {"Location": url.path})
        elif route == "tagged":
            data = self._data(rest)
            if data is not None:
                self._send(200, data, {"X-Robots-Tag": query.get("tag", "noai")})
        elif route == "cached":
            self._cached(rest)
        elif route == "robots.txt" and self.server.robots is not None:
            status, text = self.server.robots
            self._send(status, text.encode())
        elif route == "big":
            self._head(200, {"Content-Length": str(10**12)})
            self.wfile.write(b"x" * 1024)
        else:
            self._send(404, b"no such route")

    def _data(self, name: str):
        path = (self.server.root / name).resolve()
        if not path.is_file() or self.server.root.resolve() not in path.parents:
            self._send(404, b"no such file")
            return None
        return path.read_bytes()

    def _file(self, name: str, length: bool = True):
        data = self._data(name)
        if data is not None:
            self._head(200, {"Content-Length": str(len(data))} if length else {})
            self.wfile.write(data)

    def _cached(self, name: str):
        data = self._data(name)
        if data is None:
            return
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:16]
        modified = email.utils.formatdate((self.server.root / name).stat().st_mtime, usegmt=True)
        asked_etag, asked_since = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        if asked_etag == etag or (asked_etag is None and asked_since == modified):
            with self.server.lock:
                self.server.not_modified += 1
            self._send(304, b"", {"ETag": etag, "Last-Modified": modified})
        else:
            self._send(200, data, {"ETag": etag, "Last-Modified": modified})

    def _trickle(self, every: float, size: int):
        self._head(200, {"Content-Length": str(size)})
        for _ in range(size):
            self.wfile.write(b"t")
            self.wfile.flush()
            time.sleep(every)

    def _head(self, status: int, headers: dict):
        self._answering()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()

    def _send(self, status: int, body: bytes, headers: dict | None = None):
        self._head(status, {"Content-Length": str(len(body)), **(headers or {})})
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class LoopbackServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 with `handler`, serving while used as a context manager;
    `url(path)` names a path on it. Clients that hang up mid-answer are not errors here."""

    daemon_threads = True
    request_queue_size = 128  # the standard 5 drops SYNs when many clients connect at once (1 s retries)
    block_on_close = False  # handlers still sleeping in a slow route must not hold up the test's end

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.hits: collections.Counter = collections.Counter()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path.lstrip('/')}"

    def handle_error(self, request, client_address):
        pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class LoopbackHTTPServer(LoopbackServer):
    """The test server: `url(path)`, `hits` (Counter of request paths), `hit_times` (monotonic times per
    path), `max_in_flight` (most requests received and not yet answered at once), `root` (the folder /files serves), `robots`
    ((status, text) of /robots.txt, None: 404), `user_agents`, `not_modified` (304s sent)."""

    def __init__(self, root: Path, slow_seconds: float = 2.0):
        super().__init__(_Handler)
        self.root = Path(root)
        self.slow_seconds = slow_seconds
        self.hit_times = collections.defaultdict(list)
        self.in_flight = self.max_in_flight = self.not_modified = 0
        self.robots = None
        self.user_agents = []


@pytest.fixture
def http_server(tmp_path):
    """A LoopbackHTTPServer serving tmp_path/served (empty: put files there), stopped after the test."""
    root = tmp_path / "served"
    root.mkdir()
    with LoopbackHTTPServer(root) as server:
        yield server
