"""transforms.media.decode_sandbox: images and meshes decoded in a child process give what the in-process
decoders give; a file that hangs is stopped at --decode-timeout, one whose decoder dies is a dead letter,
and the next file decodes in a fresh child; --decode-timeout 0 decodes without a child."""
import io
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import ROOT
from hostile.make_corpus import TRIANGLE_DATA_URI, node_chain_gltf
from schemas.options import MediaOptions
from transforms.media import decode_sandbox, images, meshes
from transforms.media.errors import MediaError

CUBE = ((ROOT / "examples" / "meshes" / "cube.off").read_bytes(), "off", "meshes/cube.off")
SANDBOXED = MediaOptions(point_cloud_size=16, decode_timeout=30)


def jpeg(width: int = 40, height: int = 24) -> bytes:
    pixels = np.random.default_rng(3).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def hanging_mesh() -> tuple[bytes, str, str]:
    """A glTF whose triangle hangs below 100,000 nested nodes: trimesh takes minutes over it."""
    return node_chain_gltf(100_000, TRIANGLE_DATA_URI), "gltf", "deep.gltf"


def child_pids() -> set[int]:
    """The pids of this process's children, as the kernel lists them under its threads."""
    pids = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            pids.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:  # a thread that ended meanwhile
            pass
    return pids


def in_new_thread(function, *args):
    """function(*args) in a thread of its own (the sandbox keeps one child per thread) -> its result."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def clouds(items: list, options: MediaOptions) -> list:
    """decode_sandbox.point_cloud of each (bytes, file type, uri) item, in order."""
    return [decode_sandbox.point_cloud(*item, options) for item in items]


def meshes_in_a_new_child(items: list, options: MediaOptions, meanwhile=None) -> tuple[int, list]:
    """In a new thread, so with a new child: decode a first file (the child is then up and idle), start
    meanwhile(the child's pid) when given, decode `items` -> (that child's pid, their results)."""
    def work():
        before = child_pids()
        clouds([CUBE], options)
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
    unreadable = (b"not a mesh at all", "stl", "bad.stl")
    cloud, error = clouds([CUBE, unreadable], SANDBOXED)
    expected = meshes.point_cloud(*CUBE, 16)
    assert cloud.dtype == np.float32 and cloud.shape == (16, 3)
    assert np.array_equal(cloud, expected)
    assert isinstance(error, MediaError) and error.reason_class.startswith("mesh_")


def test_a_hanging_file_is_stopped_and_the_next_file_decodes_in_a_new_child():
    options = MediaOptions(point_cloud_size=16, decode_timeout=1)
    child, (stopped, after) = meshes_in_a_new_child([hanging_mesh(), CUBE], options)
    assert isinstance(stopped, MediaError) and stopped.reason_class == "decode_timeout"
    assert "--decode-timeout 1s" in stopped.reason
    assert np.array_equal(after, meshes.point_cloud(*CUBE, 16))
    assert child not in child_pids(), "the child that hung was not stopped"


def test_a_decoder_killed_mid_file_is_decode_crashed_and_the_next_file_decodes():
    """What the OOM killer does to a child busy on a file: that file is a dead letter naming the signal."""
    def kill_soon(child):
        threading.Timer(1.0, os.kill, (child, signal.SIGKILL)).start()  # by then it is busy with the hanging file

    child, (crashed, after) = meshes_in_a_new_child([hanging_mesh(), CUBE], SANDBOXED, kill_soon)
    assert isinstance(crashed, MediaError) and crashed.reason_class == "decode_crashed"
    assert "SIGKILL" in crashed.reason
    assert after.shape == (16, 3) and child not in child_pids()


def test_decode_timeout_0_decodes_in_process_without_a_child():
    options = MediaOptions(point_cloud_size=16, decode_timeout=0)
    before = child_pids()
    cloud = in_new_thread(clouds, [CUBE], options)[0]
    decoded = in_new_thread(decode_sandbox.decode_image, jpeg(), options)
    assert child_pids() == before, "--decode-timeout 0 started a child process"
    assert np.array_equal(cloud, meshes.point_cloud(*CUBE, 16))
    assert decoded == images.DecodedImage(jpeg(), "image/jpeg", 40, 24)


def test_a_new_thread_with_a_time_limit_does_start_a_child():
    """The counterpart of the test above: the same call with a time limit is observed starting a child."""
    before = child_pids()
    in_new_thread(clouds, [CUBE], SANDBOXED)
    assert child_pids() - before
