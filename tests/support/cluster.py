"""Start and stop local services for the runner tests: a Dask cluster (scheduler + workers as subprocesses)
and Beam's local job service for the PortableRunner.

Every service is a fresh subprocess in its own process group (so the workers import the code as it is now,
not as some long-lived cluster imported it), and stopping one terminates the whole group and waits for it:
no process is left behind. Output goes to log files whose tail is shown when a service fails to start.
"""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0,
                  host: str = LOOPBACK) -> None:
    """Block until something accepts connections on host:port; RuntimeError when the process dies
    first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before listening on "
                               f"port {port}:\n{log_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s:\n{log_tail(log)}")


def log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Service:
    """One subprocess in a new session (so a process group of its own), logging to a file."""

    def __init__(self, args: list, log: Path, env: dict | None = None, cwd: str | None = None):
        self.args, self.log = args, log
        self._log_handle = open(log, "wb")  # noqa: SIM115 - open for the life of the process; closed in stop()
        self.process = subprocess.Popen(args, stdout=self._log_handle, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session: the process leads its own group

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the whole process group, then SIGKILL to whatever is still there after `timeout`."""
        try:
            _signal_group(self.pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.pgid, signal.SIGKILL)
                self.process.wait(timeout=10)
            # Children (nannies, worker processes) may outlive the leader briefly: wait for the group.
            deadline = time.monotonic() + timeout
            while _group_alive(self.pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(self.pgid):
                _signal_group(self.pgid, signal.SIGKILL)
                time.sleep(0.5)
        finally:
            self._log_handle.close()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also succeeds for zombies that are not ours to reap; look for a live member.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def can_hide_tmp() -> bool:
    """Whether a process can be started in a mount namespace of its own with an empty /tmp
    (root and util-linux `unshare`), to hide the launcher's temporary files from it."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs tmpfs /tmp && test -z \"$(ls -A /tmp)\""],
                           capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


class DaskCluster:
    """`dask scheduler` + `dask worker --nworkers N --nthreads 1` on the loopback interface.

    hide_tmp: run the workers in a private mount namespace whose /tmp is an empty tmpfs, so they cannot
    see anything the launcher (the test process) keeps under /tmp."""

    def __init__(self, logs: Path, workers: int = 2, hide_tmp: bool = False, timeout: float = 60.0):
        self.port = free_port()
        self.address = f"tcp://{LOOPBACK}:{self.port}"
        self.workers, self.hide_tmp = workers, hide_tmp
        self._services: list[Service] = []
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            scheduler = Service([sys.executable, "-m", "dask", "scheduler", "--host", LOOPBACK,
                                 "--port", str(self.port), "--no-dashboard"], logs / "dask-scheduler.log", env)
            self._services.append(scheduler)
            wait_for_port(self.port, scheduler.process, scheduler.log, timeout)
            worker = [sys.executable, "-m", "dask", "worker", self.address, "--nworkers", str(workers),
                      "--nthreads", "1", "--no-dashboard", "--host", LOOPBACK]
            if hide_tmp:
                command = " ".join(_quote(a) for a in worker)
                worker = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          f"mount -t tmpfs tmpfs /tmp && cd / && exec {command}"]
            self._services.append(Service(worker, logs / "dask-workers.log", env, cwd="/"))
            self._wait_for_workers(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_for_workers(self, timeout: float) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            try:
                client.wait_for_workers(self.workers, timeout=timeout)
            except Exception as exc:
                raise RuntimeError(f"{self.workers} Dask workers did not register: {exc}\n"
                                   f"{log_tail(self._services[-1].log)}") from exc

    @property
    def client_address(self) -> str:
        """The form `--dask_client_address` takes."""
        return f"{LOOPBACK}:{self.port}"

    def run_on_workers(self, function, *args) -> dict:
        """{worker address: function(*args) run in that worker process}."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return client.run(function, *args)

    def stop(self) -> None:
        _close_clients_of(self.address)
        for service in reversed(self._services):  # workers first, then the scheduler
            service.stop()
        self._services.clear()

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._services]


def _quote(arg: str) -> str:
    import shlex
    return shlex.quote(str(arg))


def _close_clients_of(address: str) -> None:
    """Close the Dask clients this process still holds to `address` (Beam's DaskRunner opens one per run
    and never closes it), so they do not try to reconnect to a scheduler that is going away."""
    with contextlib.suppress(Exception):
        from distributed.client import _global_clients

        for client in list(_global_clients.values()):
            if client.scheduler is not None and client.scheduler.address == address:
                with contextlib.suppress(Exception):
                    client.close(timeout=5)


class JobService:
    """Beam's local job service (`local_job_service_main`) on the loopback interface, for the PortableRunner."""

    def __init__(self, logs: Path, timeout: float = 60.0):
        self.port = free_port()
        self.staging = logs / "job-service-staging"
        self.staging.mkdir(parents=True, exist_ok=True)
        self._service = Service([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                                 "--port", str(self.port), "--staging_dir", str(self.staging)],
                                logs / "job-service.log", dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            wait_for_port(self.port, self._service.process, self._service.log, timeout, host="localhost")
        except BaseException:
            self.stop()
            raise

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.port}"

    def stop(self) -> None:
        self._service.stop()

    def pids(self) -> list[int]:
        return [self._service.process.pid]


@contextlib.contextmanager
def dask_cluster(logs: Path, **kwargs) -> Iterator[DaskCluster]:
    cluster = DaskCluster(logs, **kwargs)
    try:
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def job_service(logs: Path, **kwargs) -> Iterator[JobService]:
    service = JobService(logs, **kwargs)
    try:
        yield service
    finally:
        service.stop()
