"""Where a run stages its files before the commit, who owns a staging folder, and clearing the staging of
runs that died (killed, SIGKILL, a lost machine) so it does not pile up beside the output.

- Local disks: a hidden sibling of the output, `.NAME.staging-RUN`, so the commit can swap folders. The
  shards are written there too.
- Object stores: a prefix inside the output, `_staging-RUN/`, for the run's scratch files (owner, spill
  files, progress markers); the shards go straight to the run's version, `versions/RUN/`, where they stay
  once published (transforms.commit).
A run writes `owner.json` (host, pid) into its staging folder first, before any other file of the run;
the next run on the same output removes the staging folders whose owner is a process of this host that no
longer runs.
"""
import json
import os
import posixpath
import socket

from transforms.output_folder import STAGING_PREFIX
from transforms.storage import VERSIONS, filesystem, join_url, write_bytes
from transforms.uris import is_local

OWNER = "owner.json"
PROGRESS_FOLDER = "progress"  # in the staging folder: markers the stages drop for the progress line
COMMIT_MARKER = "commit.json"  # in PROGRESS_FOLDER: the commit has started


def staging_url(output: str, run_id: str) -> str:
    """Where a run stages its files: a hidden sibling on local disks, a prefix inside the output elsewhere."""
    if is_local(output):
        parent, name = os.path.split(output.rstrip("/"))
        return os.path.join(parent, f".{name}.staging-{run_id}")
    return join_url(output, f"{STAGING_PREFIX}{run_id}")


def shards_url(output: str, run_id: str) -> str:
    """Where a run writes its shards: its staging folder on local disks, its version on object stores."""
    return staging_url(output, run_id) if is_local(output) else join_url(output, VERSIONS, run_id)


def claim(staging: str) -> None:
    """Mark the staging folder as this process's (and prove it is writable: any storage error raises)."""
    write_bytes(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode(), join_url(staging, OWNER))


def staged_runs(output: str) -> set[str]:
    """The run ids of the claimed staging folders of --output (runs in progress, or dead and not cleared
    yet): those holding an owner, so a stray file written after a run's clean-up does not count."""
    prefix = posixpath.basename(staging_url(output, ""))
    return {posixpath.basename(posixpath.dirname(owner))[len(prefix):] for owner in _staging_folders(output, OWNER)}


def remove_dead_stagings(output: str) -> list[str]:
    """Remove the staging folders of --output whose owner was a process of this host that is gone;
    returns the folders removed."""
    fs, _ = filesystem(output)
    removed = []
    for folder in _staging_folders(output):
        try:
            with fs.open(join_url(folder, OWNER), "rb") as handle:
                owner = json.load(handle)
        except (OSError, ValueError):
            continue  # no owner yet (just created) or not ours to judge
        if owner.get("host") == socket.gethostname() and not _alive(int(owner.get("pid", 0))):
            _remove_owner_last(fs, folder)
            removed.append(folder)
    return removed


def remove_staging(staging: str) -> None:
    """Remove a staging folder, its owner last: a run killed while removing it leaves a folder that still
    names its (dead) owner, so the next run finds and removes the rest (a recursive delete may take the
    owner first and leave files no run would ever claim). A folder that does not exist is no error."""
    try:
        _remove_owner_last(*filesystem(staging))
    except FileNotFoundError:
        pass


def _remove_owner_last(fs, path: str) -> None:
    owner = join_url(path, OWNER)
    rest = [p for p in fs.find(path) if p != owner]
    if rest:
        fs.rm(rest)
    fs.rm(path, recursive=True)  # the owner, then (local disks) the emptied folders


def _staging_folders(output: str, *inside: str) -> list[str]:
    """The staging folders of --output, or the files `inside` them (paths within its filesystem)."""
    fs, path = filesystem(join_url(staging_url(output, "*"), *inside))
    try:
        return fs.glob(path)
    except OSError:  # no such bucket or folder yet: nothing staged there (writability is checked next)
        return []


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
