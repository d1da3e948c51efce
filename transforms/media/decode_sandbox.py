"""Decode images and meshes in a child process with a time limit per file, so that a file which hangs or
crashes its decoder becomes a dead letter instead of a stuck or dead worker.

Each thread that decodes gets one child (`python -m transforms.media.decode_sandbox`), started on first use and
kept for later files. The parent sends one file at a time and waits at most --decode-timeout seconds for
the answer: past that the child is killed (reason_class `decode_timeout`); a child that dies on a file
(a segfault, the OOM killer) gives `decode_crashed`. Either way the next file starts a fresh child. With
--decode-timeout 0 files are decoded in the worker itself, unguarded.
Messages on the pipes are an 8-byte length and a pickle: (function name, args) in, ("ok"|"error", value) out.
"""
import atexit
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Optional

import numpy as np

from schemas.options import MediaOptions
from transforms.media.images import DecodedImage
from transforms.media.images import decode_image as _decode_image
from transforms.media.errors import MediaError
from transforms.media.meshes import point_cloud as _point_cloud

START_SECONDS = 120.0  # a child's imports (numpy, Pillow, trimesh) on a loaded machine; not a file's time
_SAME_BYTES = "same"  # an image answer whose blob is the bytes sent: not sent back
_LENGTH = struct.Struct("<Q")
_local = threading.local()
_children: set = set()


def decode_image(data: bytes, options: MediaOptions) -> DecodedImage | MediaError:
    """Image bytes -> DecodedImage or MediaError (images.decode_image under the time limit)."""
    if not options.decode_timeout:
        try:
            return _decode_image(data, options)
        except MediaError as error:
            return error
    answer = _sandbox().call("image", (data, options), options.decode_timeout, "image")
    if isinstance(answer, DecodedImage) and isinstance(answer.blob, str):  # _SAME_BYTES
        return DecodedImage(data, answer.mime_type, answer.width, answer.height)
    return answer


def point_cloud(data: bytes, file_type: str, uri: str, options: MediaOptions) -> np.ndarray | MediaError:
    """A mesh file -> a (count, 3) float32 cloud or a MediaError (meshes.point_cloud under the time limit)."""
    count = options.point_cloud_size
    if not options.decode_timeout:
        return _point_cloud(data, file_type, uri, count)
    return _sandbox().call("mesh", (data, file_type, uri, count), options.decode_timeout, file_type + " mesh")


class _Sandbox:
    """One child process and the pipes to it; restarted after a timeout or a crash."""

    def __init__(self):
        self._child: Optional[subprocess.Popen] = None

    def call(self, function: str, args: tuple, timeout: float, what: str):
        """function(*args) in the child -> its result or MediaError (never raises for the file's sake)."""
        for _ in range(2):
            child = self._started()
            try:
                _send(child.stdin, (function, args))
                break
            except (BrokenPipeError, OSError):  # died before this file (killed from outside): once more
                self._stop()
        else:
            return MediaError("decode_crashed", "the decoder process could not be started or fed this file.")
        try:
            answer = _receive(child.stdout, time.monotonic() + timeout)
        except EOFError:  # the child closed its end: it is dying
            code = child.wait()
            self._stop()
            return MediaError("decode_crashed", f"the decoder process died on this {what} ({_exit(code)}); "
                                                "the file crashes the decoding library.")
        if answer is None:
            self._stop()
            return MediaError("decode_timeout", f"decoding this {what} took longer than --decode-timeout "
                                                f"{timeout:g}s and was stopped; the file is pathological or "
                                                "very large: raise --decode-timeout to give it longer.")
        status, value = answer
        return value if status == "ok" else MediaError("decode_error", value)

    def _started(self) -> subprocess.Popen:
        if self._child is None or self._child.poll() is not None:
            self._stop()
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
            self._child = subprocess.Popen([sys.executable, "-m", "transforms.media.decode_sandbox", str(os.getpid())],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                           env=env, close_fds=True)
            _children.add(self._child)
            try:
                ready = _receive(self._child.stdout, time.monotonic() + START_SECONDS)
            except EOFError:
                ready = None
            if ready != ("ok", "ready"):
                self._stop()
                raise RuntimeError("the decode sandbox process did not start; run "
                                   "`python -m transforms.media.decode_sandbox` to see why, or pass --decode-timeout 0")
        return self._child

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            _children.discard(child)
            child.kill()
            child.wait()
            for pipe in (child.stdin, child.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass


def _sandbox() -> _Sandbox:
    if not hasattr(_local, "sandbox"):
        _local.sandbox = _Sandbox()
    return _local.sandbox


def _exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _send(pipe, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_LENGTH.pack(len(data)) + data)
    pipe.flush()


def _receive(pipe, deadline: float):
    """The next message on `pipe`, or None when it does not arrive complete before the deadline;
    EOFError when the pipe closes first (the writer died)."""
    fd, parts, wanted, size = pipe.fileno(), [], _LENGTH.size, None
    while True:
        have = sum(map(len, parts))
        if have == wanted and size is None:
            size = _LENGTH.unpack(b"".join(parts))[0]
            parts, wanted = [], size
            continue
        if have == wanted:
            return pickle.loads(b"".join(parts))
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, min(wanted - have, 1 << 20))
        if not chunk:
            raise EOFError("the sandbox process closed its output")
        parts.append(chunk)


@atexit.register
def _stop_children() -> None:
    for child in list(_children):
        child.kill()


# --- the child ---------------------------------------------------------------------------------------


def _image(data: bytes, options: MediaOptions):
    result = _decode_image(data, options)
    if result.blob is data:
        return DecodedImage(_SAME_BYTES, result.mime_type, result.width, result.height)
    return result


def _mesh(data: bytes, file_type: str, uri: str, count: int):
    result = _point_cloud(data, file_type, uri, count)
    if isinstance(result, MediaError):
        raise result
    return result


_FUNCTIONS = {"image": _image, "mesh": _mesh}


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone, even in the middle of a decode that never ends."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _serve(parent: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    reader, writer = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's print must not corrupt the answers
    _send(writer, ("ok", "ready"))
    while True:
        header = reader.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            return
        function, args = pickle.loads(reader.read(_LENGTH.unpack(header)[0]))
        try:
            answer = ("ok", _FUNCTIONS[function](*args))
        except MediaError as error:
            answer = ("ok", error)
        except Exception as error:  # a decoder bug: this file's dead letter, not the child's end
            answer = ("error", f"decoding failed unexpectedly ({type(error).__name__}: {str(error)[:200]}).")
        _send(writer, answer)


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())
