"""A fake Google Cloud Storage on loopback for tests: `gcp-storage-emulator` in a subprocess, with gcsfs
pointed at it through the environment (so Beam workers and `python -m ...` subprocesses see it too).

tests/conftest.py registers its fixtures for every test module:

    def test_something(gcs):
        gcs.fs.pipe(f"{gcs.bucket}/in/a.csv", b"...")
        url = gcs.url("in/a.csv")            # "gs://bucket/in/a.csv"
        subprocess.run([...], env=gcs.env)   # os.environ plus the emulator settings

`gcs_server` (session scope) starts one emulator (in memory, a free port), sets the environment, waits until
it answers and creates the bucket; at the end it restores the environment and kills the emulator's process
group. `gcs` (function scope) hands out that server with an empty bucket and empties it again afterwards.

What gcsfs needs, and why:
- STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT: gcsfs (and google-cloud-storage) send requests there.
  gcsfs reads it on every request, so cached filesystem instances follow it.
- GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false: read when gcsfs is imported; otherwise gcsfs uses its
  zonal/HNS class, whose bucket-type lookup the emulator does not serve and which waits ~60 s per bucket.
  If gcsfs was already imported with it on, the fixture registers gcsfs' core class for gs:// / gcs://
  for the session (and restores the registry afterwards).
- FSSPEC_GS_TOKEN=anon (and the same in fsspec's in-process config): no credential lookup (ADC, GCE
  metadata server), so a developer's real Google credentials are never sent to or refreshed for the fake.
- NO_GCE_CHECK=true: belt and braces, gcsfs skips the metadata-server probe.

Known emulator gap: no `moveTo`, so gcsfs `mv`/`rename` retries for ~30 s and then falls back to
copy + delete (see `GcsServer.moveto_supported`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "bucket"
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def emulator_env(endpoint: str) -> dict[str, str]:
    """The environment variables that point gcsfs (and google-cloud-storage) at an emulator, anonymously."""
    return {
        "STORAGE_EMULATOR_HOST": endpoint,
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "FSSPEC_GS_TOKEN": "anon",
        "NO_GCE_CHECK": "true",
    }


@dataclasses.dataclass
class GcsServer:
    """A running emulator: its endpoint, the environment that selects it, and a gcsfs filesystem on it."""

    endpoint: str
    env: dict  # os.environ at start-up plus emulator_env(endpoint); pass to subprocesses
    process: subprocess.Popen
    log_path: Path
    bucket: str = BUCKET

    @property
    def fs(self):
        """A gcsfs filesystem on the emulator (anonymous), with its listing cache dropped: other processes
        (the job under test, a subprocess) may have written since it was last used."""
        import fsspec

        fs = fsspec.filesystem("gs", token="anon")
        fs.invalidate_cache()
        return fs

    def url(self, key: str = "") -> str:
        return f"gs://{self.bucket}/{key.lstrip('/')}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def moveto_supported(self) -> bool:
        """Whether the emulator implements objects.moveTo, which gcsfs' mv/rename tries first (and, when it
        fails, retries for ~30 s before falling back to copy + delete)."""
        source, target = "_probe/moveto-source", "_probe/moveto-target"
        self.fs.pipe(f"{self.bucket}/{source}", b"x")
        quote = urllib.parse.quote
        url = f"{self.endpoint}/storage/v1/b/{self.bucket}/o/{quote(source, safe='')}/moveTo/o/{quote(target, safe='')}"
        request = urllib.request.Request(url, method="POST", data=b"{}", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5):
                return True
        except urllib.error.HTTPError:
            return False
        finally:
            self.fs.rm(f"{self.bucket}/_probe", recursive=True)

    def empty_bucket(self) -> None:
        fs = self.fs
        keys = fs.find(self.bucket)
        if keys:
            fs.rm(keys)
        fs.invalidate_cache()


def _stop(process: subprocess.Popen) -> None:
    """Kill the emulator's process group (it was started in a new session), TERM then KILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _launch(workdir: Path, attempts: int = 3) -> tuple[subprocess.Popen, str, Path]:
    """Start the emulator on a free port (retrying if another process takes the port first)."""
    failures = []
    for attempt in range(attempts):
        port = free_port()
        log_path = workdir / f"emulator-{attempt}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gcp_storage_emulator", "start", f"--host={HOST}", f"--port={port}",
                 "--in-memory"],
                cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole at teardown
            )
        endpoint = f"http://{HOST}:{port}"
        server = GcsServer(endpoint, {}, process, log_path)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and server.alive():
            if server.answers():
                return process, endpoint, log_path
            time.sleep(0.1)
        _stop(process)
        failures.append(f"port {port}: exit code {process.returncode}; log:\n{server.log()}")
    raise RuntimeError("gcp-storage-emulator did not answer:\n" + "\n".join(failures))


@contextlib.contextmanager
def _gcsfs_configured(env: dict[str, str]) -> Iterator[None]:
    """Set the emulator's environment in this process and make fsspec's gs:// use it; undo everything after."""
    import fsspec
    import fsspec.config

    registry = sys.modules["fsspec.registry"]._registry  # (`fsspec.registry` is the read-only view)
    saved_env = {k: os.environ.get(k) for k in env}
    saved_conf = {p: dict(fsspec.config.conf[p]) if p in fsspec.config.conf else None for p in ("gs", "gcs")}
    saved_registry = {p: registry.get(p) for p in ("gs", "gcs")}
    os.environ.update(env)
    for protocol in ("gs", "gcs"):
        fsspec.config.conf.setdefault(protocol, {})["token"] = "anon"
    import gcsfs
    import gcsfs.core

    if gcsfs.GCSFileSystem is not gcsfs.core.GCSFileSystem:
        # gcsfs was imported before the variable was set: use the core class, as the variable would.
        for protocol in ("gs", "gcs"):
            fsspec.register_implementation(protocol, gcsfs.core.GCSFileSystem, clobber=True)
    gcsfs.core.GCSFileSystem.clear_instance_cache()
    try:
        yield
    finally:
        gcsfs.core.GCSFileSystem.clear_instance_cache()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for protocol, value in saved_conf.items():
            if value is None:
                fsspec.config.conf.pop(protocol, None)
            else:
                fsspec.config.conf[protocol] = value
        for protocol, cls in saved_registry.items():
            if cls is None:
                registry.pop(protocol, None)
            else:
                registry[protocol] = cls


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    """One emulator for the session, with the bucket created; environment set for this process and children."""
    try:
        import gcp_storage_emulator  # noqa: F401
        import gcsfs  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"gcs emulator tests need gcsfs and gcp-storage-emulator ({exc})")
    workdir = Path(tempfile.mkdtemp(prefix="gcs-emulator-"))
    process, endpoint, log_path = _launch(workdir)
    try:
        env = emulator_env(endpoint)
        with _gcsfs_configured(env):
            server = GcsServer(endpoint, {**os.environ}, process, log_path)
            server.fs.mkdir(server.bucket)
            yield server
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def gcs(gcs_server: GcsServer) -> Iterator[GcsServer]:
    """The session's emulator with an empty bucket; the bucket is emptied again after the test."""
    if not gcs_server.alive():
        pytest.fail(f"gcp-storage-emulator exited (code {gcs_server.process.returncode}):\n{gcs_server.log()}")
    gcs_server.empty_bucket()
    yield gcs_server
    if gcs_server.alive():
        gcs_server.empty_bucket()
