"""--allowed-roots holds against a race: a loop swaps a folder inside the root with a symlink to a folder
outside it (renameat2 RENAME_EXCHANGE) while files are fetched through that path. The file checked must be
the file read: no fetch may return bytes from outside the root."""
import ctypes
import threading
import time

from schemas.options import MediaOptions
from transforms.media.fetch import fetch_one

SECONDS = 6.0
INSIDE, OUTSIDE = b"inside the root " * 64, b"SECRET outside " * 64


def exchange(a: str, b: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def test_swapping_a_folder_for_a_symlink_never_leaks_bytes_from_outside_the_roots(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (root / "real" / "a.jpg").write_bytes(INSIDE)
    (outside / "a.jpg").write_bytes(OUTSIDE)
    (root / "link").symlink_to(outside, target_is_directory=True)
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            exchange(str(root / "real"), str(root / "link"))

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    options = MediaOptions(allowed_roots=(str(root),), retries=0)
    outcomes = {"inside": 0, "refused": 0, "leaked": 0}
    deadline = time.monotonic() + SECONDS
    try:
        while time.monotonic() < deadline:
            result = fetch_one(str(root / "real" / "a.jpg"), options)
            if result.data == OUTSIDE:
                outcomes["leaked"] += 1
            elif result.data == INSIDE:
                outcomes["inside"] += 1
            else:  # refused as outside the roots, or missing / unresolvable for an instant: a dead letter
                outcomes["refused"] += 1
    finally:
        stop.set()
        swapper.join()
    assert outcomes["leaked"] == 0, outcomes
    assert outcomes["inside"] > 0 and outcomes["refused"] > 0, outcomes  # the race really ran both ways
