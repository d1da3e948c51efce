"""transforms.media.decode_sandbox: images and meshes decoded in a child process give what the in-process
decoders give; a file that hangs is stopped at --decode-timeout, one whose decoder dies is a dead letter,
one that needs more memory than --decode-memory is stopped there, and the next file decodes in a fresh
child; --decode-timeout 0 decodes without a child."""
import io
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from hostile.make_corpus import TRIANGLE_DATA_URI, fan_obj, gltf, node_chain_gltf, sixteen_bit_png
from schemas.options import MediaOptions
from transforms.media import decode_sandbox, images, meshes
from transforms.media.errors import MediaError

CUBE = ((ROOT / "examples" / "meshes" / "cube.off").read_bytes(), "off")
SANDBOXED = MediaOptions(point_cloud_size=16, decode_timeout=30)
CAP = 300 << 20
CAPPED = MediaOptions(point_cloud_size=16, decode_timeout=30, decode_memory=CAP)
FANS = (fan_obj(100_000, 40), "obj")  # 8 MB: 4 million triangles, 700 MiB to load


def jpeg(width: int = 40, height: int = 24) -> bytes:
    pixels = np.random.default_rng(3).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def hanging_mesh() -> tuple[bytes, str]:
    """A glTF whose triangle hangs below 100,000 nested nodes: trimesh takes minutes over it."""
    return node_chain_gltf(100_000, TRIANGLE_DATA_URI), "gltf"


def child_pids() -> set[int]:
    """The pids of this process's children, whichever of its threads started them: the processes whose
    parent (in /proc/PID/stat) is this process. (/proc/self/task/*/children can miss a child for a moment
    while the thread that started it exits and the child moves to another thread.)"""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # a process that ended meanwhile
            continue
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            pids.add(int(entry.name))
    return pids


def data_limit(pid: int) -> str:
    """A process's RLIMIT_DATA as /proc shows it: a number of bytes, or "unlimited"."""
    limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
    return next(line for line in limits if line.startswith("Max data size")).split()[3]


def in_new_thread(function, *args):
    """function(*args) in a thread of its own (the sandbox keeps one child per thread) -> its result."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def clouds(items: list, options: MediaOptions) -> list:
    """decode_sandbox.point_cloud of each (bytes, file type) item, in order."""
    return [decode_sandbox.point_cloud(*item, options) for item in items]


def meshes_in_a_new_child(items: list, options: MediaOptions, meanwhile=None, first=CUBE) -> tuple[int, list]:
    """In a new thread, so with a new child: decode a `first` file (the child is then up and idle, with what
    that file needed imported), start meanwhile(the child's pid) when given, decode `items` -> (that child's
    pid, their results)."""
    def work():
        before = child_pids()
        clouds([first], options)
        (child,) = child_pids() - before
        if meanwhile is not None:
            meanwhile(child)
        return child, clouds(items, options)
    return in_new_thread(work)


def test_an_image_decodes_in_the_child_with_its_own_bytes():
    data = jpeg()
    decoded = decode_sandbox.decode_image(data, SANDBOXED)
    assert decoded == images.DecodedImage(data, "image/jpeg", 40, 24)


def test_a_resized_image_comes_back_from_the_child_as_the_in_process_decoder_makes_it():
    options = MediaOptions(image_size=12, decode_timeout=30)
    decoded = decode_sandbox.decode_image(jpeg(), options)
    assert decoded == images.decode_image(jpeg(), options)
    assert (decoded.width, decoded.height) == (20, 12) and decoded.blob != jpeg()
    assert Image.open(io.BytesIO(decoded.blob)).size == (20, 12)


def test_a_file_that_is_not_an_image_is_a_media_error_from_the_child():
    error = decode_sandbox.decode_image(b"<html>Not Found</html>", SANDBOXED)
    assert isinstance(error, MediaError) and error.reason_class == "not_an_image"


def test_point_cloud_from_the_child_equal_the_in_process_ones():
    unreadable = (b"not a mesh at all", "stl")
    cloud, error = clouds([CUBE, unreadable], SANDBOXED)
    expected = meshes.point_cloud(*CUBE, 16)
    assert cloud.points.dtype == np.float32 and cloud.points.shape == (16, 3) and cloud.origin == "surface"
    assert np.array_equal(cloud.points, expected)
    assert isinstance(error, MediaError) and error.reason_class.startswith("mesh_")


def test_a_hanging_file_is_stopped_and_the_next_file_decodes_in_a_new_child():
    options = MediaOptions(point_cloud_size=16, decode_timeout=1)
    child, (stopped, after) = meshes_in_a_new_child([hanging_mesh(), CUBE], options)
    assert isinstance(stopped, MediaError) and stopped.reason_class == "decode_timeout"
    assert "--decode-timeout 1s" in stopped.reason
    assert np.array_equal(after.points, meshes.point_cloud(*CUBE, 16))
    assert child not in child_pids(), "the child that hung was not stopped"


def trimesh_import_seconds() -> float:
    """How long importing trimesh takes here, after what a decoder child has imported (the mesh readers)."""
    code = ("import time, transforms.media.meshes; t = time.perf_counter(); import trimesh; "
            "print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout)


def test_a_child_imports_trimesh_for_its_first_gltf_outside_that_files_time_limit():
    """A child imports trimesh only when a file needs it (plain meshes never do), and not on that file's
    clock: a --decode-timeout of half the import's time still decodes the file."""
    triangle = (gltf(TRIANGLE_DATA_URI), "gltf")
    options = MediaOptions(point_cloud_size=16, decode_timeout=trimesh_import_seconds() / 2)
    _, (plain, first_gltf) = meshes_in_a_new_child([CUBE, triangle], options)
    assert np.array_equal(plain.points, meshes.point_cloud(*CUBE, 16))
    assert not isinstance(first_gltf, MediaError), first_gltf
    assert np.array_equal(first_gltf.points, meshes.point_cloud(*triangle, 16))


def test_a_decoder_killed_mid_file_is_decode_crashed_and_the_next_file_decodes():
    """What the OOM killer does to a child busy on a file: that file is a dead letter naming the signal."""
    def kill_soon(child):
        threading.Timer(1.0, os.kill, (child, signal.SIGKILL)).start()  # by then it is busy with the hanging file

    triangle = (gltf(TRIANGLE_DATA_URI), "gltf")  # first: trimesh is imported before the clock starts
    child, (crashed, after) = meshes_in_a_new_child([hanging_mesh(), CUBE], SANDBOXED, kill_soon, first=triangle)
    assert isinstance(crashed, MediaError) and crashed.reason_class == "decode_crashed"
    assert "SIGKILL" in crashed.reason
    assert after.points.shape == (16, 3) and child not in child_pids()


def test_a_child_starts_without_pyarrow():
    """What a decoder child imports to start and to sample plain meshes (it takes ~0.3 s to start, which the
    first batch of a small run waits for): not pyarrow, which only the parent uses."""
    code = ("import sys, transforms.media.decode_sandbox, transforms.media.meshes; "
            "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('pyarrow', 'trimesh', 'scipy')))")
    imported = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"


def test_at_exit_the_children_are_killed_and_reaped():
    """Reaped, not left to init: a child's CPU time then counts in this process's (what `time` reports), and
    the console script's frozen exit never finalizes the Popen objects that would reap them otherwise."""
    in_new_thread(decode_sandbox.decode_image, jpeg(), SANDBOXED)
    children = list(decode_sandbox._children)
    assert children and all(child.returncode is None for child in children)
    decode_sandbox._stop_children()
    assert all(child.returncode is not None for child in children)  # set by wait(): reaped
    assert not {child.pid for child in children} & child_pids()


def test_decode_timeout_0_decodes_in_process_without_a_child():
    options = MediaOptions(point_cloud_size=16, decode_timeout=0)
    before = child_pids()
    cloud = in_new_thread(clouds, [CUBE], options)[0]
    decoded = in_new_thread(decode_sandbox.decode_image, jpeg(), options)
    assert child_pids() == before, "--decode-timeout 0 started a child process"
    assert np.array_equal(cloud.points, meshes.point_cloud(*CUBE, 16))
    assert decoded == images.DecodedImage(jpeg(), "image/jpeg", 40, 24)


def test_a_new_thread_with_a_time_limit_does_start_a_child():
    """The counterpart of the test above: the same call with a time limit is observed starting a child."""
    before = child_pids()
    in_new_thread(clouds, [CUBE], SANDBOXED)
    assert child_pids() - before


def test_a_mesh_over_the_memory_cap_is_decode_memory_and_the_next_file_decodes_in_a_new_child():
    child, (refused, after) = meshes_in_a_new_child([FANS, CUBE], CAPPED)
    assert isinstance(refused, MediaError) and refused.reason_class == "decode_memory"
    assert "--decode-memory 300 MiB" in refused.reason
    assert np.array_equal(after.points, meshes.point_cloud(*CUBE, 16))
    assert child not in child_pids(), "the child that ran out of memory was kept"


PEAK = """
import resource, sys
from schemas.options import MediaOptions
from transforms.media import decode_sandbox
path, file_type, cap = sys.argv[1:]
data, options = open(path, "rb").read(), MediaOptions(image_size=64, decode_memory=int(cap))
answer = (decode_sandbox.decode_image(data, options) if file_type == "png"
          else decode_sandbox.point_cloud(data, file_type, options))
print(getattr(answer, "reason_class", "decoded"), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


@pytest.mark.parametrize("name", ["deep.png", "fans.obj"])
def test_the_decoder_of_a_file_over_the_cap_stays_under_it(tmp_path, name):
    """Issue 13's cases (uncapped, their decoder peaks at 420 MiB and 700 MiB resident). Run in a process of
    its own, whose only child is the decoder: the peak resident memory of its children is that decoder's."""
    path = tmp_path / name
    path.write_bytes(sixteen_bit_png(9400) if name == "deep.png" else FANS[0])
    done = subprocess.run([sys.executable, "-c", PEAK, str(path), name.split(".")[1], str(CAP)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    reason_class, peak = done.stdout.split()
    assert reason_class == "decode_memory"
    assert int(peak) < CAP, f"the decoder peaked at {int(peak) >> 20} MiB"


@pytest.mark.parametrize("decode_memory, limit", [(None, str(decode_sandbox.default_decode_memory())),
                                                  (0, "unlimited"), (CAP, str(CAP))])
def test_the_child_runs_with_the_memory_cap_as_its_data_limit(decode_memory, limit):
    def started_child():
        before = child_pids()
        clouds([CUBE], MediaOptions(point_cloud_size=16, decode_timeout=30, decode_memory=decode_memory))
        (child,) = child_pids() - before
        return child
    assert data_limit(in_new_thread(started_child)) == limit


def test_the_default_caps_leave_half_the_memory_to_the_worker():
    """All decoders at their default cap together take at most half of the machine's memory, unless one
    cap is already at its floor."""
    meminfo = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    total = int(meminfo["MemTotal"].split()[0]) * 1024
    cap = decode_sandbox.default_decode_memory()
    assert decode_sandbox.MIN_CAP <= cap <= decode_sandbox.MAX_CAP
    assert cap * os.cpu_count() <= total / 2 or cap == decode_sandbox.MIN_CAP


def test_a_cap_too_small_for_a_decoder_to_start_says_so():
    child = subprocess.Popen([sys.executable, "-m", "transforms.media.decode_sandbox", str(os.getpid()), str(1 << 20)],
                             cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    status, reason = decode_sandbox._receive(child.stdout, time.monotonic() + decode_sandbox.START_SECONDS)
    assert status == "error" and "which --decode-memory 1 MiB does not leave room for" in reason
    assert child.wait(timeout=30) == 0
    child.stdin.close()
    child.stdout.close()
