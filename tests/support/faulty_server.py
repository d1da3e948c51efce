"""A loopback HTTP server of small images whose failures are planned per URL, for the fault-injection tests.

`GET /media/<n>.png` answers with one of `server.images` (tiny real PNGs), unless the plan for n says
otherwise. The plan is a seeded hash of n, so the "random" faults are the same on every run:
  transient  the first request fails (500, 503 or 429 with Retry-After: 0, or a connection reset);
             every later request succeeds
  permanent  every request is answered 404 or 403
  slow       every request sleeps 0.5-2 s (a latency spike), then succeeds
  ok         the image, at once
`GET /slow/<n>.png?seconds=S` sleeps S seconds and then answers the image (to keep a job busy).
`server.hits` counts requests per n (Counter), `server.fate(n)` is (kind, detail) of the plan.
"""
import functools
import hashlib
import http.server
import io
import socket
import struct
import time
from urllib.parse import parse_qs, urlsplit

from support.http_server import LoopbackServer
from PIL import Image

TRANSIENT_KINDS = ("500", "503", "429", "reset")
PERMANENT_KINDS = ("404", "403")


@functools.lru_cache(maxsize=None)
def tiny_png(n: int, side: int = 32) -> bytes:
    """A side x side RGB PNG of its own for each n (its colour encodes n), a few hundred bytes: every URL of
    the server serves different bytes, so no two documents are one by their content."""
    img = Image.new("RGB", (side, side), (n % 256, (n // 256) % 256, 90))
    for x in range(0, side, 4):
        img.putpixel((x, x), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "FaultyMediaServer"

    def do_GET(self):
        url = urlsplit(self.path)
        route, _, name = url.path.strip("/").partition("/")
        stem = name.split(".", 1)[0]
        if route not in ("media", "slow") or not stem.isdigit():
            return self._send(404, b"no such route")
        n = int(stem)
        with self.server.lock:
            self.server.hits[n] += 1
            first = self.server.hits[n] == 1
        if route == "slow":
            time.sleep(float(parse_qs(url.query).get("seconds", ["1"])[0]))
            return self._image(n)
        kind, detail = self.server.fate(n)
        if kind == "transient" and first:
            if detail == "reset":
                return self._reset()
            return self._send(int(detail), b"try again", {"Retry-After": "0"} if detail in ("503", "429") else {})
        if kind == "permanent":
            return self._send(int(detail), b"gone")
        if kind == "slow":
            time.sleep(detail)
        self._image(n)

    def _image(self, n: int):
        self._send(200, tiny_png(n), {"Content-Type": "image/png"})

    def _reset(self):
        """Close the connection with a TCP reset, before any answer."""
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.request.close()

    def _send(self, status: int, body: bytes, headers: dict | None = None):
        try:
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a killed worker)

    def log_message(self, *args):
        pass


class FaultyMediaServer(LoopbackServer):
    """Serves /media/<n>.png with planned faults: `transient`, `permanent` and `slow` are the fractions of
    n planned to fail once, fail always and answer late; `seed` picks which n."""

    request_queue_size = 128

    def __init__(self, transient: float = 0.05, permanent: float = 0.01, slow: float = 0.003, seed: int = 7):
        super().__init__(_Handler)
        self.transient, self.permanent, self.slow, self.seed = transient, permanent, slow, seed

    def fate(self, n: int) -> tuple[str, object]:
        """The plan for /media/<n>.png: ("transient", "500"|"503"|"429"|"reset"), ("permanent", "404"|"403"),
        ("slow", seconds) or ("ok", None)."""
        digest = hashlib.blake2b(f"{self.seed}:{n}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest[:4], "little") / 2**32
        pick = digest[4]
        if u < self.transient:
            return "transient", TRANSIENT_KINDS[pick % len(TRANSIENT_KINDS)]
        if u < self.transient + self.permanent:
            return "permanent", PERMANENT_KINDS[pick % len(PERMANENT_KINDS)]
        if u < self.transient + self.permanent + self.slow:
            return "slow", 0.5 + 1.5 * pick / 255
        return "ok", None
