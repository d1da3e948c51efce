"""Progress of a local run, stage by stage: bytes and rows read, media loaded, documents written, commit.

The pipeline drops small marker files into the run's staging folder (`progress/`): the read stage one per
parsed byte range ({"rows", "bytes"}), and `MarkProgress` — attached by pipelines/prepare/build.py to every
stage's counts — one per DoFn instance ({"counts": {...}}, rewritten at most once per `every` seconds with
that instance's running totals). `ProgressLine`, in the launcher, sums them: on a terminal as one line
rewritten every second, otherwise (a scheduler's log, a Dask run) as a plain line every `--progress-every`
seconds. The markers go away with the staging folder at commit.
"""
import collections
import json
import sys
import threading
import time
import uuid

import apache_beam as beam

from pipelines.wording import counted
from transforms.staging import COMMIT_MARKER, PROGRESS_FOLDER
from transforms.storage import filesystem, join_url, write_bytes



class MarkProgress(beam.DoFn):
    """Count dicts in, nothing out: keeps this instance's running totals in a marker file of the folder."""

    def __init__(self, folder: str, every: float = 1.0):
        self._folder, self._every = folder, every

    def setup(self):
        self._path = join_url(self._folder, f"counts-{uuid.uuid4().hex}.json")
        self._totals, self._written_at, self._dirty = collections.Counter(), 0.0, False

    def process(self, counts: dict):
        self._totals.update(counts)
        self._dirty = True
        if time.monotonic() - self._written_at >= self._every:
            self._write()
        return ()

    def finish_bundle(self):
        if self._dirty:
            self._write()

    def _write(self):
        try:
            write_bytes(json.dumps({"counts": self._totals}).encode(), self._path)
        except OSError:  # progress is best effort; the staging folder may already be committed
            pass
        self._written_at, self._dirty = time.monotonic(), False


class ProgressLine:
    """Context manager: reports the run's progress to stderr until the block ends.

    staging: the run's staging folder; total_bytes: the CSV inputs' size; terminal: rewrite one line
    every `interval` seconds (True) or print a plain line every `interval` seconds (False)."""

    def __init__(self, staging: str, total_bytes: int, interval: float = 1.0, terminal: bool = True):
        self._folder = join_url(staging, PROGRESS_FOLDER)
        self._total = max(total_bytes, 1)
        self._interval, self._terminal = interval, terminal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._start = time.monotonic()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self._terminal:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _loop(self):
        while not self._stop.wait(self._interval):
            markers = self._markers()
            if markers is None:
                continue
            line = describe(markers, self._total, time.monotonic() - self._start)
            sys.stderr.write(f"\r\033[K{line}" if self._terminal else f"{line}\n")
            sys.stderr.flush()

    def _markers(self):
        """The markers' contents (unreadable ones, half written, skipped), or None when listing fails."""
        fs, folder = filesystem(self._folder)
        try:
            paths = fs.ls(folder, detail=False) if fs.exists(folder) else []
        except OSError:
            return None
        markers = []
        for path in paths:
            try:
                markers.append(json.loads(fs.cat_file(path)) if not path.endswith(COMMIT_MARKER) else {"commit": True})
            except (OSError, ValueError):
                continue
        return markers


def describe(markers: list[dict], total_bytes: int, elapsed: float) -> str:
    """Marker contents -> one progress line naming every stage that has started."""
    ranges = [m for m in markers if "bytes" in m]
    counts = collections.Counter()
    for m in markers:
        counts.update(m.get("counts", {}))
    read_rows = max(sum(m["rows"] for m in ranges), counts["rows_read"])
    read_bytes = sum(m["bytes"] for m in ranges)
    parts = [f"read {counted(read_rows, 'row')} ({100 * min(read_bytes, total_bytes) / total_bytes:.0f}% of "
             f"{_size(total_bytes)}, {counted(len(ranges), 'range')})"]
    if counts["media_files"] or counts["documents_rejected"]:
        parts.append(f"media {counted(counts['media_files'], 'file')} loaded")
    if counts["documents_written"]:
        parts.append(f"wrote {counted(counts['documents_written'], 'document')}")
    if counts["dead_letters"]:
        parts.append(counted(counts["dead_letters"], "dead letter"))
    if any("commit" in m for m in markers):
        parts.append("committing")
    minutes, seconds = divmod(int(elapsed), 60)
    return f"finetune-etl: {' · '.join(parts)} · {read_rows / max(elapsed, 1e-9):,.0f} rows/s · {minutes}:{seconds:02d}"


def _size(nbytes: int) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:,.0f} {unit}" if unit == "bytes" else f"{nbytes:,.1f} {unit}"
        nbytes /= 1000
