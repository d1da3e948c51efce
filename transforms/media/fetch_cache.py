"""A fetch cache shared between runs (`--cache URL`, a folder or bucket): http(s) media kept by URL.

Each entry is two objects under CACHE/v1/XX/: `HASH.bin` (the bytes) and `HASH.json` (the URL, the bytes'
sha256, the `ETag` and `Last-Modified` they came with, and when they were stored), HASH being the sha256 of
the URL. The metadata is written last and names the bytes' hash, so a reader never trusts a half-written or
mismatched entry: it is a miss. The cache never fails a fetch: an unreadable or unwritable cache is a miss.
"""
import dataclasses
import hashlib
import json
import logging
import time
from typing import Optional

from transforms.storage import filesystem, join_url, write_bytes

LAYOUT_VERSION = "v1"


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """What the cache holds for one URL."""

    data: bytes
    etag: Optional[str]
    last_modified: Optional[str]
    stored_at: float  # seconds since the epoch

    def conditional_headers(self) -> dict:
        """The headers that ask the server whether these bytes are still current."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class FetchCache:
    """The cache at `url` (any fsspec URL)."""

    def __init__(self, url: str):
        self.url = url

    def _paths(self, uri: str) -> tuple[str, str]:
        name = hashlib.sha256(uri.encode("utf-8", "surrogatepass")).hexdigest()
        base = join_url(self.url, LAYOUT_VERSION, name[:2], name)
        return base + ".bin", base + ".json"

    def get(self, uri: str) -> Optional[CacheEntry]:
        """The entry for a URL, or None (never stored, damaged, or the cache cannot be read)."""
        data_url, meta_url = self._paths(uri)
        try:
            fs, meta_path = filesystem(meta_url)
            meta = json.loads(fs.cat_file(meta_path))
            data = fs.cat_file(filesystem(data_url)[1])
        except FileNotFoundError:
            return None
        except Exception as error:  # a damaged or unreachable cache is a miss, not a failed file
            logging.getLogger(__name__).warning("fetch cache: cannot read the entry of %s: %s", uri[:200], error)
            return None
        if meta.get("uri") != uri or meta.get("sha256") != hashlib.sha256(data).hexdigest():
            return None
        return CacheEntry(data, meta.get("etag"), meta.get("last_modified"), float(meta.get("stored_at", 0)))

    def put(self, uri: str, data: bytes, etag: Optional[str], last_modified: Optional[str]) -> None:
        """Keep a URL's bytes with their validators (a failure to write is logged, not raised)."""
        data_url, _ = self._paths(uri)
        try:
            write_bytes(data, data_url)
        except Exception as error:
            logging.getLogger(__name__).warning("fetch cache: cannot store %s: %s", uri[:200], error)
            return
        self._write_meta(uri, data, etag, last_modified)

    def refresh(self, uri: str, entry: CacheEntry, etag: Optional[str], last_modified: Optional[str]) -> None:
        """After a 304: the entry is current as of now (with the validators the server sent, if any)."""
        self._write_meta(uri, entry.data, etag or entry.etag, last_modified or entry.last_modified)

    def _write_meta(self, uri: str, data: bytes, etag: Optional[str], last_modified: Optional[str]) -> None:
        _, meta_url = self._paths(uri)
        meta = {"uri": uri, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "etag": etag,
                "last_modified": last_modified, "stored_at": time.time()}
        try:
            write_bytes(json.dumps(meta).encode(), meta_url)
        except Exception as error:
            logging.getLogger(__name__).warning("fetch cache: cannot store %s: %s", uri[:200], error)
