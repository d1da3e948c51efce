"""Decode images and meshes in a child process with a time limit and a memory cap per file, so that a file
which hangs, crashes its decoder or needs more memory than a decoder may have becomes a dead letter instead
of a stuck, dead or swapping worker.

Each thread that decodes gets one child (`python -m transforms.media.decode_sandbox`), started on first use and
kept for later files. The parent sends one file at a time and waits at most --decode-timeout seconds for
the answer: past that the child is killed (reason_class `decode_timeout`); a child that dies on a file
(a segfault, the OOM killer) gives `decode_crashed`. Either way the next file starts a fresh child. With
--decode-timeout 0 files are decoded in the worker itself, unguarded: no time limit and no memory cap.

The memory cap (--decode-memory; default_decode_memory() when not given; 0: none) is the child's
RLIMIT_DATA, set once its imports are done (they count against it). Measured on a fresh child (numpy,
Pillow, trimesh, scipy and simplejpeg imported; Linux 6.18, 2 cores): VmData 170 MiB, VmSize 510 MiB,
VmPeak 566 MiB, resident 139 MiB. RLIMIT_AS would count all of VmSize, which includes 150 MiB of shared
library code and 127 MiB of address space reserved but never written (glibc's 64 MiB malloc arena per
thread, PROT_NONE), amounts that grow with the machine, not with the file. RLIMIT_DATA (Linux 4.7 and later,
unless booted with ignore_rlimit_data) counts private writable memory only: the heap, numpy's and Pillow's
buffers, thread stacks, which is what a hostile file inflates. Past it an allocation fails (the kernel kills
nothing): MemoryError in Python, numpy and Pillow, or Pillow's "out of memory" codec status; the child
answers `decode_memory` and exits, and the next file gets a fresh child. The child runs OpenBLAS on one
thread: numpy's and scipy's OpenBLAS otherwise each start a thread per core, with its own buffer (+41 MiB of
VmData per thread; 250 MiB on 2 cores).
Messages on the pipes are an 8-byte length and a pickle: (function name, args) in, (status, value) out,
status "ok", "error", "memory", or "import" (the file needs trimesh, which a child imports only when a file
does: the parent has it imported under the start-up's time limit and sends the file again).
"""
import atexit
import functools
import importlib
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Optional

from schemas.options import MediaOptions
from transforms.media.images import DecodedImage
from transforms.media.images import decode_image as _decode_image
from transforms.media.errors import MediaError

if TYPE_CHECKING:  # only runs that have meshes load the mesh modules
    from transforms.media.meshes import Cloud

START_SECONDS = 120.0  # a child's imports (numpy, Pillow, the mesh readers) on a loaded machine; not a file's time
MIN_CAP, MAX_CAP = 1 << 30, 4 << 30  # the range of the default --decode-memory
_SAME_BYTES = "same"  # an image answer whose blob is the bytes sent: not sent back
_LENGTH = struct.Struct("<Q")
_local = threading.local()
_children: set = set()


def decode_image(data: bytes, options: MediaOptions) -> DecodedImage | MediaError:
    """Image bytes -> DecodedImage or MediaError (images.decode_image under the time limit and memory cap)."""
    if not options.decode_timeout:
        try:
            return _decode_image(data, options)
        except MediaError as error:
            return error
    answer = _sandbox().call("image", (data, options), options, "image")
    if isinstance(answer, DecodedImage) and isinstance(answer.blob, str):  # _SAME_BYTES
        return DecodedImage(data, answer.mime_type, answer.width, answer.height)
    return answer


def point_cloud(data: bytes, file_type: str, options: MediaOptions) -> "Cloud | MediaError":
    """A mesh file -> its meshes.Cloud of options.point_cloud_size points, or a MediaError (meshes.file_cloud
    with options.min_points, under the time limit and memory cap)."""
    args = (data, file_type, options.point_cloud_size, options.min_points)
    if not options.decode_timeout:
        return _file_cloud(*args)
    return _sandbox().call("mesh", args, options, file_type + " mesh")


@functools.cache
def default_decode_memory() -> int:
    """The memory cap of each decoder child when --decode-memory is not given, in bytes: half of this machine's
    memory (or of its cgroup's limit, when lower; the other half is the worker's) shared by the decoders that
    can run at once (one per core: load_media's decoding threads), within MIN_CAP and MAX_CAP."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):  # cgroup v2, v1
        try:
            with open(limit) as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():  # v2 writes "max" when there is no limit
            total = min(total, int(text))
    return min(max(total // 2 // (os.cpu_count() or 1), MIN_CAP), MAX_CAP)


def memory_cap(options: MediaOptions) -> int:
    """The memory cap in bytes of a decoder child for these options (0: none)."""
    return default_decode_memory() if options.decode_memory is None else options.decode_memory


def _size(size: int) -> str:
    """Bytes -> '300 MiB', '1.5 GiB'."""
    unit, name = (1 << 30, "GiB") if size >= 1 << 30 else (1 << 20, "MiB")
    return f"{round(size / unit, 1):g} {name}"


class _Sandbox:
    """One child process and the pipes to it; restarted after a timeout, a crash or running out of memory, and
    when the memory cap asked for changes."""

    def __init__(self):
        self._child: Optional[subprocess.Popen] = None
        self._cap = 0
        self._imported_for: set[str] = set()  # the names warmed in the child (see _warmed)

    def call(self, function: str, args: tuple, options: MediaOptions, what: str):
        """function(*args) in a child capped at memory_cap(options) -> its result or MediaError (never raises
        for the file's sake)."""
        imports = [function]  # what the child imports before this file, outside its time limit
        while True:
            child = self._fed(imports, (function, args), options)
            if child is None:
                return MediaError("decode_crashed", "the decoder process could not be started or fed this file.")
            try:
                answer = _receive(child.stdout, time.monotonic() + options.decode_timeout)
            except EOFError:  # the child closed its end: it is dying
                code = child.wait()
                self._stop()
                return MediaError("decode_crashed", f"the decoder process died on this {what} ({_exit(code)}); "
                                                    "the file crashes the decoding library.")
            if answer is None:
                self._stop()
                return MediaError("decode_timeout", f"decoding this {what} took longer than --decode-timeout "
                                                    f"{options.decode_timeout:g}s and was stopped; the file is "
                                                    "pathological or very large: raise --decode-timeout to give it longer.")
            status, value = answer
            if status == "import" and value not in imports:  # the file needs trimesh: imported, then sent again
                imports.append(value)
                continue
            if status == "memory":  # the child exits after this answer
                self._stop()
                return MediaError("decode_memory", _memory_reason(what, self._cap))
            if status == "import":
                return MediaError("decode_error", f"the decoder could not import {value} for this {what}.")
            return value if status == "ok" else MediaError("decode_error", value)

    def _fed(self, imports: list, message: tuple, options: MediaOptions) -> Optional[subprocess.Popen]:
        """The child, with `imports` imported, after `message` was sent to it; None when no child could be
        started or fed (tried twice: a child killed from outside before this file is replaced once)."""
        for _ in range(2):
            child = self._started(memory_cap(options))
            try:
                for name in imports:
                    self._warmed(child, name)
                _send(child.stdin, message)
                return child
            except (BrokenPipeError, OSError, EOFError):
                self._stop()
        return None

    def _started(self, cap: int) -> subprocess.Popen:
        if self._child is None or self._child.poll() is not None or cap != self._cap:
            self._stop()
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
                       OPENBLAS_NUM_THREADS="1")  # see the module docstring
            self._child = subprocess.Popen([sys.executable, "-m", "transforms.media.decode_sandbox", str(os.getpid()),
                                            str(cap)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, env=env, close_fds=True)
            self._cap = cap
            _children.add(self._child)
            try:
                ready = _receive(self._child.stdout, time.monotonic() + START_SECONDS)
            except EOFError:
                ready = None
            if ready != ("ok", "ready"):
                self._stop()
                why = ready[1] if ready and ready[0] == "error" else (
                    "run `python -m transforms.media.decode_sandbox` to see why, or pass --decode-timeout 0")
                raise RuntimeError(f"the decode sandbox process did not start; {why}")
        return self._child

    def _warmed(self, child: subprocess.Popen, name: str) -> None:
        """Have the child import what `name` needs (a function's modules: the mesh readers; or trimesh, when
        a file asked for it) with the start-up's time limit, so that a file's --decode-timeout never pays for
        imports. Raises OSError or EOFError when the child is gone."""
        if name in self._imported_for:
            return
        _send(child.stdin, ("warm", (name,)))
        if _receive(child.stdout, time.monotonic() + START_SECONDS) != ("ok", "ready"):
            raise OSError(f"the decoder process did not get ready for {name}")
        self._imported_for.add(name)

    def _stop(self) -> None:
        self._imported_for = set()
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


def _memory_reason(what: str, cap: int) -> str:
    """The reason of a `decode_memory` dead letter for a file of kind `what` in a child capped at `cap` bytes."""
    if not cap:
        return (f"the decoder ran out of memory on this {what}, with no --decode-memory cap: the machine's memory "
                "ran out; the file is pathological or very large.")
    return (f"decoding this {what} needs more memory than a decoder may take (--decode-memory {_size(cap)}) "
            "and was stopped; the file is pathological or very large: raise --decode-memory to allow more.")


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
    pipe.write(_LENGTH.pack(len(data)))
    pipe.write(data)
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
    """Kill the decoder children and reap them: a child left to init would take its CPU time out of this
    process's accounting (`time`, `getrusage(RUSAGE_CHILDREN)`), and the console script's frozen exit never
    finalizes the Popen objects that would otherwise reap it."""
    children = list(_children)
    for child in children:
        child.kill()
    for child in children:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck in the kernel: init reaps it once it dies
            pass


# --- the child ---------------------------------------------------------------------------------------


def _image(data: bytes, options: MediaOptions):
    result = _decode_image(data, options)
    if result.blob is data:
        return DecodedImage(_SAME_BYTES, result.mime_type, result.width, result.height)
    return result


def _file_cloud(data: bytes, file_type: str, count: int, min_points: int):
    """meshes.file_cloud, imported on first use (see _warm): only runs that have meshes load it."""
    from transforms.media.meshes import file_cloud

    return file_cloud(data, file_type, count, min_points)


def _mesh(data: bytes, file_type: str, count: int, min_points: int):
    result = _without_late_imports(_file_cloud, data, file_type, count, min_points)
    if isinstance(result, MediaError):
        raise result
    return result


class _ImportFirst(Exception):
    """A file needs a module the child has not imported yet; args[0] names it."""


def _without_late_imports(function, *args):
    """function(*args), with trimesh's import (about a second, with scipy and networkx) refused while trimesh
    is not imported: such a file raises _ImportFirst("trimesh"), the parent has the child import it outside
    the file's time limit (see _Sandbox.call) and sends the file again."""
    refused = "trimesh" not in sys.modules
    if refused:
        sys.modules["trimesh"] = None  # Python's own rule: `import trimesh` now raises ModuleNotFoundError
    try:
        return function(*args)
    except ModuleNotFoundError as error:
        if refused and (error.name or "").partition(".")[0] == "trimesh":
            raise _ImportFirst("trimesh") from None
        raise
    finally:
        if refused and sys.modules.get("trimesh", False) is None:
            del sys.modules["trimesh"]


_WARM_MODULES = {"mesh": "transforms.media.meshes", "trimesh": "trimesh"}  # the numpy mesh readers; trimesh


def _warm(name: str) -> str:
    """Import what `name` needs before a file does (see _Sandbox._warmed) -> 'ready'."""
    if name in _WARM_MODULES:
        importlib.import_module(_WARM_MODULES[name])
    return "ready"


_FUNCTIONS = {"image": _image, "mesh": _mesh, "warm": _warm}


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone, even in the middle of a decode that never ends."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _serve(parent: int, cap: int) -> None:
    """Answer the parent's requests on stdin/stdout, with at most `cap` bytes of private memory (0: no cap),
    until stdin closes or a request runs out of memory."""
    reader, writer = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's print must not corrupt the answers
    if cap:
        at_start = _data_bytes()
        if at_start >= cap:
            _send(writer, ("error", f"a decoder takes {_size(at_start)} when it starts, which --decode-memory "
                                    f"{_size(cap)} does not leave room for; raise --decode-memory."))
            return
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _send(writer, ("ok", "ready"))
    while True:
        header = reader.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            return
        try:
            function, args = pickle.loads(reader.read(_LENGTH.unpack(header)[0]))
            answer = ("ok", _FUNCTIONS[function](*args))
        except MemoryError:
            answer = ("memory", None)
        except MediaError as error:
            answer = ("ok", error)
        except _ImportFirst as needed:
            answer = ("import", needed.args[0])
        except Exception as error:  # a decoder bug: this file's dead letter, not the child's end
            answer = ("error", f"decoding failed unexpectedly ({type(error).__name__}: {str(error)[:200]}).")
        try:
            _send(writer, answer)
        except MemoryError:  # no room to pickle the answer (a large re-encoded image): nothing was written yet
            answer = ("memory", None)
            _send(writer, answer)
        if answer[0] == "memory":
            return  # a MemoryError can leave a library in a bad state: the parent starts a fresh child


def _data_bytes() -> int:
    """This process's private writable memory (VmData), which RLIMIT_DATA caps, in bytes."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmData:"))


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid(), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
