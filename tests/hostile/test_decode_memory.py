"""Issue 13: a file that needs more memory to decode than --decode-memory becomes a `decode_memory` dead
letter naming its CSV row, the other files of the run still become documents, and the run reconciles."""
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import ROOT, assert_reconciled, dead_letters, documents, write_csv
from hostile.make_corpus import TETRA_FACES, TETRAHEDRON, fan_obj, sixteen_bit_png


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def test_files_over_the_decode_memory_cap_are_dead_letters_and_the_rest_documents(tmp_path):
    files = {
        "photo.jpg": jpeg(5),
        "after.jpg": jpeg(6),  # other pixels: the same bytes would be one document
        "deep.png": sixteen_bit_png(9400),  # 771 KB; 88 megapixels of 16 bits: 420 MiB to decode
        "tetra.off": f"OFF\n4 4 0\n{TETRAHEDRON}{TETRA_FACES}".encode(),
        "fans.obj": fan_obj(100_000, 40),  # 8 MB of polygon fans: 4 million triangles, 700 MiB to load
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    pairs = [("photo.jpg", "tetra.off"), ("deep.png", "tetra.off"), ("photo.jpg", "fans.obj"), ("after.jpg", "tetra.off")]
    source = write_csv(tmp_path, "".join(f"{image},{mesh}\n" for image, mesh in pairs))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "pipelines.prepare", "--input", str(source), "--output", str(out),
                           "--image-size", "64", "--point-cloud-size", "64", "--decode-memory", "300M"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    letters = dead_letters(out)
    assert [(d["source_file"], d["source_row"], d["reason_class"]) for d in letters] == [
        (str(source), 2, "decode_memory"), (str(source), 3, "decode_memory")]
    for letter, name in zip(letters, ["deep.png", "fans.obj"]):
        assert name in letter["reason"] and "--decode-memory 300 MiB" in letter["reason"], letter["reason"]
    assert [[Path(chunk[2]).name for chunk in doc[5]] for doc in documents(out)] == [
        ["after.jpg", "tetra.off"], ["photo.jpg", "tetra.off"]]
    counts = assert_reconciled(out)
    assert counts["rows_read"] == counts["documents_written"] + counts["dead_letters"] == 4
