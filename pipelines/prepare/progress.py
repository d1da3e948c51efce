"""A progress line on the terminal while a local run works: ranges parsed, rows read, rate.

The read stage drops a small marker file per parsed byte range into the run's staging folder
(`progress/`), which this thread sums once a second. Only used when stderr is a terminal and the run is
on this machine; the markers go away with the staging folder at commit.
"""
import json
import sys
import threading
import time

from transforms.storage import filesystem, join_url

PROGRESS_FOLDER = "progress"


class ProgressLine:
    """Context manager: prints `\\r`-updated progress to stderr until the block ends."""

    def __init__(self, staging: str, total_bytes: int, interval: float = 1.0):
        self._folder = join_url(staging, PROGRESS_FOLDER)
        self._total = max(total_bytes, 1)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._start = time.monotonic()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()

    def _loop(self):
        fs, folder = filesystem(self._folder)
        while not self._stop.wait(self._interval):
            try:
                markers = fs.ls(folder, detail=False) if fs.exists(folder) else []
                done = [json.loads(fs.cat_file(m)) for m in markers]
            except (OSError, ValueError):
                continue
            rows = sum(d["rows"] for d in done)
            read = sum(d["bytes"] for d in done)
            elapsed = time.monotonic() - self._start
            sys.stderr.write(
                f"\r\033[Kfinetune-etl: {len(done)} ranges, {rows:,} rows, {read / 1e6:,.0f} of "
                f"{self._total / 1e6:,.0f} MB read ({100 * read / self._total:.0f}%), "
                f"{rows / max(elapsed, 1e-9):,.0f} rows/s")
            sys.stderr.flush()
