"""Where a run stages, who owns a staging folder, and which stale ones the next run removes."""
import json
import os
import socket

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from transforms.staging import (OWNER, claim, remove_dead_stagings, remove_staging, shards_url, staged_runs,
                                staging_url)


def test_local_staging_is_a_hidden_sibling_and_object_store_staging_a_prefix():
    assert staging_url("/data/out", "R1") == "/data/.out.staging-R1"
    assert staging_url("/data/out/", "R1") == "/data/.out.staging-R1"
    assert staging_url("gs://bucket/datasets/out", "R1") == "gs://bucket/datasets/out/_staging-R1"


def test_shards_go_to_the_staging_folder_on_local_disks_and_to_the_run_s_version_on_object_stores():
    assert shards_url("/data/out", "R1") == "/data/.out.staging-R1"
    assert shards_url("gs://bucket/datasets/out/", "R1") == "gs://bucket/datasets/out/versions/R1"


def test_staged_runs_are_the_run_ids_of_the_claimed_staging_folders(tmp_path):
    out = str(tmp_path / "out")
    for run_id in ("R1", "R2"):
        claim(staging_url(out, run_id))
    (tmp_path / ".out.staging-R3" / "progress").mkdir(parents=True)  # written after its run's clean-up
    assert staged_runs(out) == {"R1", "R2"}
    assert staged_runs("memory://no-such-bucket-here/out") == set()


def test_claim_names_this_process(tmp_path):
    staging = staging_url(str(tmp_path / "out"), "R1")
    claim(staging)
    owner = json.loads((tmp_path / ".out.staging-R1" / OWNER).read_text())
    assert owner == {"host": socket.gethostname(), "pid": os.getpid()}


def test_only_the_staging_of_a_dead_process_of_this_host_is_removed(tmp_path):
    out = str(tmp_path / "out")
    owners = {"dead": {"host": socket.gethostname(), "pid": 2 ** 22 + 4321},
              "alive": {"host": socket.gethostname(), "pid": os.getpid()},
              "elsewhere": {"host": "another-machine", "pid": 2 ** 22 + 4321}}
    for run, owner in owners.items():
        folder = tmp_path / f".out.staging-{run}"
        folder.mkdir()
        (folder / OWNER).write_text(json.dumps(owner))
    (tmp_path / ".out.staging-unclaimed").mkdir()
    removed = remove_dead_stagings(out)
    assert [os.path.basename(p) for p in removed] == [".out.staging-dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.staging-alive", ".out.staging-elsewhere", ".out.staging-unclaimed"]


def test_object_store_stagings_are_found_too():
    memory = fsspec.filesystem("memory")
    out = "memory://bucket/out"
    memory.pipe("/bucket/out/_staging-dead/owner.json",
                json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 99}).encode())
    memory.pipe("/bucket/out/_staging-dead/spill/b00000/x.arrow", b"x")
    assert len(remove_dead_stagings(out)) == 1
    assert not memory.exists("/bucket/out/_staging-dead")


class _StuckFileSystem(MemoryFileSystem):
    """An in-memory store on which one file cannot be removed (a delete cut short, as by a kill)."""

    protocol = "stuckmemory"

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.replace("stuckmemory://", "memory://", 1))

    def rm_file(self, path):
        if "stuck" in path:
            raise OSError(f"cannot remove {path}")
        super().rm_file(path)


def test_a_staging_folder_loses_its_owner_last_so_a_removal_cut_short_is_finished_by_the_next_run():
    fsspec.register_implementation(_StuckFileSystem.protocol, _StuckFileSystem, clobber=True)
    store = fsspec.filesystem(_StuckFileSystem.protocol)
    staging = "/stuck-bucket/out/_staging-dead"
    store.pipe(f"{staging}/owner.json", json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 99}).encode())
    for name in ("a-stuck.arrow", "spill/a.arrow", "progress/z.json"):
        store.pipe(f"{staging}/{name}", b"x")

    with pytest.raises(OSError):
        remove_staging(f"stuckmemory:/{staging}")
    assert store.exists(f"{staging}/owner.json")  # still claimed: the next run can judge it
    assert staged_runs("stuckmemory://stuck-bucket/out") == {"dead"}

    _StuckFileSystem.rm_file = MemoryFileSystem.rm_file  # the store recovers
    assert len(remove_dead_stagings("stuckmemory://stuck-bucket/out")) == 1
    assert store.find(staging) == []
    remove_staging(f"stuckmemory:/{staging}")  # gone already: no error
