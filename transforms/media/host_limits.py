"""Per-host limits a run keeps on one machine, whatever its worker count: at most N requests in flight
per host, and hosts given up after N consecutive connection failures (a circuit breaker).

The state lives in a local folder the run's processes share (`MediaOptions.host_state`, made by the
launcher under the temp folder and removed at the end): one folder per host with N slot files held by
`flock` while a request is in flight, and a `down` file once the host is given up. Without that folder
(a caller of `fetch_all` outside a run) the same rules hold per process.
"""
import collections
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from typing import Callable, Optional

HOST_STATE_ROOT = "finetune-etl-hosts"
SLOT_WAIT = 0.005  # seconds between looks for a free slot


def host_state_folder(run_id: str) -> str:
    """A run id -> the local folder its processes share host limits in (not created here)."""
    return os.path.join(tempfile.gettempdir(), HOST_STATE_ROOT, run_id)


def remove_host_state(folder: Optional[str]) -> None:
    """Remove a run's host-state folder (at the end of the run; missing is fine)."""
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def host_key(scheme: str, host: str, port: int) -> str:
    """scheme, host, port -> a file-name-safe key naming that host (readable, and unique by a short hash)."""
    name = f"{scheme}://{host.lower()}:{port}"
    readable = re.sub(r"[^a-z0-9.-]+", "_", host.lower())[:80]
    return f"{readable}-{port}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"


class HostGiveUp(Exception):
    """Raised by `slot` when the host was given up while waiting (or `stop()` says the caller gave up)."""


class HostLimits:
    """Slots and failure counts of every host, for one state folder (None: this process only)."""

    def __init__(self, folder: Optional[str], concurrency: int, failure_threshold: int):
        self.folder, self.concurrency, self.threshold = folder, concurrency, failure_threshold
        self._lock = threading.Lock()
        self._failures: collections.Counter = collections.Counter()
        self._down: dict[str, str] = {}
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    def _host_folder(self, key: str) -> str:
        path = os.path.join(self.folder, key)
        os.makedirs(path, exist_ok=True)
        return path

    def down_reason(self, key: str) -> Optional[str]:
        """Why the host was given up in this run (by any process), or None while it is not."""
        if key in self._down:
            return self._down[key]
        if self.folder is None:
            return None
        try:
            with open(os.path.join(self.folder, key, "down"), encoding="utf-8") as handle:
                reason = handle.read()
        except FileNotFoundError:
            return None
        self._down[key] = reason
        return reason

    def record(self, key: str, failed: bool, reason: str = "") -> None:
        """Count one attempt's outcome: a success resets the host's consecutive failures; the failure that
        reaches the threshold gives the host up for the run (remembered in the shared folder)."""
        with self._lock:
            if not failed:
                self._failures[key] = 0
                return
            self._failures[key] += 1
            if self._failures[key] < self.threshold or key in self._down:
                return
            text = (f"{self._failures[key]} consecutive connection errors, timeouts or DNS failures "
                    f"(the last: {reason})")
            self._down[key] = text
        if self.folder is not None:
            folder = self._host_folder(key)
            with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, encoding="utf-8") as handle:
                handle.write(text)
            os.replace(handle.name, os.path.join(folder, "down"))

    @contextlib.contextmanager
    def slot(self, key: str, stop: Callable[[], bool] = lambda: False):
        """Hold one of the host's in-flight slots for the block; waits for a free one. HostGiveUp when the
        host is given up meanwhile or `stop()` turns true (the batch's deadline passed)."""
        if self.folder is None:
            with self._lock:
                semaphore = self._semaphores.setdefault(key, threading.BoundedSemaphore(self.concurrency))
            while not semaphore.acquire(timeout=0.05):
                self._check(key, stop)
            try:
                yield
            finally:
                semaphore.release()
            return
        folder = self._host_folder(key)
        while True:
            descriptor = self._try_slots(folder)
            if descriptor is not None:
                break
            self._check(key, stop)
            time.sleep(SLOT_WAIT)
        try:
            yield
        finally:
            os.close(descriptor)  # closing the file releases its lock

    def _check(self, key: str, stop: Callable[[], bool]) -> None:
        reason = self.down_reason(key)
        if reason is not None or stop():
            raise HostGiveUp(reason)

    def _try_slots(self, folder: str) -> Optional[int]:
        """A descriptor holding the lock of a free slot file, or None when all are held. Slots are tried
        from a different first one per thread, so waiting threads do not all queue on slot 0."""
        first = threading.get_ident() % self.concurrency
        for i in range(self.concurrency):
            path = os.path.join(folder, f"slot-{(first + i) % self.concurrency}")
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return descriptor
            except BlockingIOError:
                os.close(descriptor)
        return None
