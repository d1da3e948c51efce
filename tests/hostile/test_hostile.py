"""The hostile corpus (tests/hostile/make_corpus.py) through the real command line: every input row ends
as a document or as a dead letter whose reason says what is wrong, no run crashes or hangs, counts reconcile.

One table per kind of input; each table is one `finetune-etl prepare` run in a subprocess with a time
limit, so a hang fails its test instead of blocking CI. Expectations are Doc (a document) or
Dead(reason_class, words the reason must contain).
"""
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from conftest import assert_reconciled

import pipelines
from schemas.options import MediaOptions
from transforms.media import decode_sandbox
from transforms.media.fetch import fetch_one
from transforms.media.errors import MediaError

sys.path.insert(0, str(Path(__file__).parent))
import make_corpus  # noqa: E402

RUN_SECONDS = 120  # one pipeline run, hostile inputs included; a run that takes longer is hung


@dataclasses.dataclass(frozen=True)
class Doc:
    """A document is written (mime: its mime_type, for images)."""
    mime: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Dead:
    """A dead letter of this reason_class whose reason contains `words`."""
    reason_class: str
    words: str


def prepare(out: Path, inputs: list[Path], *args: str) -> Path:
    """`finetune-etl prepare` in a subprocess, killed after RUN_SECONDS; returns the output folder."""
    argv = ["prepare", *[a for i in inputs for a in ("--input", str(i))], "--output", str(out), *args]
    code = "import sys; from pipelines.cli import main; sys.exit(main(sys.argv[1:]))"
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                              timeout=RUN_SECONDS, cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        pytest.fail(f"finetune-etl prepare hung: no answer after {RUN_SECONDS} s ({' '.join(argv)})")
    assert done.returncode == 0, f"prepare failed after {time.monotonic() - started:.1f} s:\n{done.stderr[-3000:]}"
    assert_reconciled(out)
    return out


def outcomes_by_label(out: Path, csv_rows: dict[int, str]) -> dict[str, object]:
    """Case name -> Doc(mime) or the dead letter dict, for a run over a CSV whose labels are case names;
    csv_rows maps a source row to its case, for dead letters."""
    found = {}
    for row in pipelines.load_table(str(out), columns=["label", "mime_type"]).to_pylist():
        assert row["label"] not in found, f"two documents for case {row['label']}"
        found[row["label"]] = Doc(row["mime_type"])
    for letter in pipelines.load_dead_letters(str(out)).to_pylist():
        case = csv_rows[letter["source_row"]]
        assert case not in found, f"case {case} is both a document and a dead letter"
        found[case] = letter
    return found


def check(case: str, outcome, expected) -> None:
    assert outcome is not None, f"{case}: neither a document nor a dead letter"
    if isinstance(expected, Doc):
        assert isinstance(outcome, Doc), f"{case}: expected a document, got dead letter {outcome}"
        assert expected.mime in (None, outcome.mime), f"{case}: mime_type {outcome.mime}, expected {expected.mime}"
        return
    assert isinstance(outcome, dict), f"{case}: expected a dead letter {expected}, got a document"
    assert outcome["reason_class"] == expected.reason_class, f"{case}: {outcome}"
    assert expected.words in outcome["reason"], f"{case}: reason {outcome['reason']!r} lacks {expected.words!r}"


def media_csv(folder: Path, cases: dict[str, str]) -> tuple[Path, dict[int, str]]:
    """A labeled CSV `uri,case` per case -> (its path, source row -> case)."""
    path = folder / "media.csv"
    path.write_text("".join(f"{uri},{case}\n" for case, uri in cases.items()))
    return path, {i + 1: case for i, case in enumerate(cases)}


# --- CSV files: one run, every file its own --input, --header -------------------------------------

# case -> (texts of its documents, {source row: expected dead letter})
CSV_CASES = {
    "bom": (["bom first", "bom second"], {}),
    "mixed_newlines": (["crlf row", "lf row", "cr row", "last row"], {}),
    "nul_bytes": (["clean nul-file row"], {2: Dead("nul_byte", "NUL byte")}),
    "unterminated_quote": (["closed row"], {3: Dead("quote", "never closed")}),
    "huge_field": (["short row", "h" * 20 * 1024 * 1024], {}),
    "wide_row": (["narrow row"], {3: Dead("field_count", "row has 100000 fields but this run's rows have 2")}),
    "typographic_quotes": (["plain row"], {3: Dead("field_count", "typographic quotes")}),
    "invalid_utf8": (["good row", "another good row"], {3: Dead("encoding", "not valid utf-8")}),
    "empty": ([], {}),
    "header_only": ([], {}),
    "gzip_named_csv": ([], {1: Dead("compressed", "gzip-compressed")}),
}


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-csv")
    files = make_corpus.write_csvs(folder / "in")
    out = prepare(folder / "out", list(files.values()), "--is-labeled", "--header")
    docs, dead = {}, {}
    for row in pipelines.load_table(str(out), columns=["text", "source_file"]).to_pylist():
        docs.setdefault(Path(row["source_file"]).stem, []).append(row["text"])
    for letter in pipelines.load_dead_letters(str(out)).to_pylist():
        dead.setdefault(Path(letter["source_file"]).stem, {})[letter["source_row"]] = letter
    return docs, dead


@pytest.mark.parametrize("case", CSV_CASES)
def test_hostile_csv(csv_run, case):
    docs, dead = csv_run
    texts, letters = CSV_CASES[case]
    assert sorted(docs.get(case, [])) == sorted(texts), case
    assert sorted(dead.get(case, {})) == sorted(letters), (case, dead.get(case))
    for row, expected in letters.items():
        check(f"{case} row {row}", dead[case][row], expected)


# --- images, local paths that escape or are not files, URLs refused before connecting: one run --------

LONG_URL = "http://example.com/" + "a" * 1_000_000 + ".jpg"
IMAGE_CASES = {
    "truncated_jpeg": Dead("truncated", "truncated or corrupt"),
    "zero_bytes": Dead("not_an_image", "empty (0 bytes)"),
    "bomb_50000x50000": Dead("decompression_bomb", "2,500,000,000 pixels"),
    "png_named": Doc("image/png"),  # decoded by content, whatever the extension says
    "text_named": Dead("not_an_image", "starts like text"),
    "cmyk": Doc("image/jpeg"),
    "sixteen_bit": Doc("image/png"),
    "animated": Doc("image/png"),  # --image-size re-encodes the first frame
    "dotdot_escape": Dead("path_not_allowed", "outside --allowed-roots"),
    "symlink_out": Dead("path_not_allowed", "outside --allowed-roots"),
    "dev_zero": Dead("not_a_file", "not a regular file"),
    "fifo": Dead("not_a_file", "not a regular file"),
    "metadata_address": Dead("private_address", "169.254.169.254"),
    "private_address": Dead("private_address", "10.0.0.1"),
    "unknown_scheme": Dead("bad_uri", "foo://"),
    "megabyte_url": Dead("bad_uri", "over 8192 characters"),
    "ftp_private_address": Dead("private_address", "10.0.0.2"),  # fsspec's ftp obeys the address policy too
    "archive_scheme": Dead("bad_uri", "tar:// that media are not read from"),
}
REFUSED_URLS = {
    "metadata_address": "http://169.254.169.254/latest/meta-data/x.jpg",
    "private_address": "http://10.0.0.1/x.jpg",
    "unknown_scheme": "foo://x.jpg",
    "megabyte_url": LONG_URL,
    "ftp_private_address": "ftp://10.0.0.2/x.jpg",
    "archive_scheme": "tar://x.jpg",
}


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-images") / "root"
    uris = {case: path.name for case, path in make_corpus.write_images(root).items()}
    uris.update(make_corpus.write_paths(root))
    uris.update(REFUSED_URLS)
    path, rows = media_csv(root, uris)
    out = prepare(root.parent / "out", [path], "--is-labeled", "--image-size", "16",
                  "--allowed-roots", f"{root},/dev", "--fetch-retries", "0")
    return outcomes_by_label(out, rows)


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_hostile_image(image_run, case):
    check(case, image_run.get(case), IMAGE_CASES[case])


@pytest.mark.parametrize("case", REFUSED_URLS)
def test_refused_urls_are_refused_before_connecting(case):
    """Refused at once and never retried: the address is checked after resolving the host, before a
    connection (a connection to 10.0.0.1 here would wait out the 30 s timeout, 4 times)."""
    result = fetch_one(REFUSED_URLS[case], MediaOptions(retries=3, timeout=30))
    assert result.attempts <= 1 and result.error.reason_class == IMAGE_CASES[case].reason_class


# --- meshes: one run ----------------------------------------------------------------------------------

MESH_CASES = {
    "nan_vertex_off": Doc(),  # the faces on the NaN vertex are dropped, the rest is sampled
    "all_nan_off": Dead("mesh_degenerate", "non-finite"),
    "zero_area_off": Dead("mesh_degenerate", "total area of 0"),
    "billion_faces_off": Dead("mesh_unreadable", "1000000000 faces"),
    "billion_faces_ply": Dead("mesh_unreadable", "1000000000 face"),
    "embedded_buffer_gltf": Doc(),
    "self_buffer_gltf": Dead("mesh_unreadable", "external files self_buffer.gltf"),
    "passwd_buffer_gltf": Dead("mesh_unreadable", "external files ../../etc/passwd"),
    "dev_zero_buffer_gltf": Dead("mesh_unreadable", "external files /dev/zero"),
    "http_buffer_gltf": Dead("mesh_unreadable", "external files http://169.254.169.254"),
    "out_of_range_accessor_gltf": Dead("mesh_unreadable", "cannot reshape"),
    "garbage_stl": Dead("mesh_unreadable", "STL"),
    "garbage_ply": Dead("mesh_unreadable", "ply"),
    "garbage_glb": Dead("mesh_unreadable", "glb"),
    "garbage_obj": Dead("mesh_unreadable", "not text"),
    "deep_node_chain_gltf": Dead("decode_timeout", "--decode-timeout 3s"),  # minutes in trimesh: stopped
}


@pytest.fixture(scope="module")
def mesh_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-meshes")
    uris = {case: path.name for case, path in make_corpus.write_meshes(root).items()}
    path, rows = media_csv(root, uris)
    out = prepare(root / "out", [path], "--is-labeled", "--allowed-roots", str(root), "--point-cloud-size", "64",
                  "--decode-timeout", "3")
    return outcomes_by_label(out, rows)


@pytest.mark.parametrize("case", MESH_CASES)
def test_hostile_mesh(mesh_run, case):
    check(case, mesh_run.get(case), MESH_CASES[case])


# --- URLs served by a misbehaving loopback server: one run --------------------------------------------

URL_CASES = {
    "redirect_loop": ("/loop/x.jpg", Dead("redirect_loop", "loop")),
    "redirect_chain_to_loop": ("/redirect/redirect/loop/x.jpg", Dead("redirect_loop", "loop")),
    "redirect_to_file": ("/redirect/x.jpg?to=file:///etc/passwd", Dead("bad_redirect", "not http(s)")),
    "terabyte_body": ("/big/x.jpg", Dead("too_large", "--max-media-bytes")),
    "slow": ("/slow/x.jpg?seconds=5", Dead("timeout", "--fetch-timeout")),
    "trickle": ("/trickle/x.jpg?every=0.3&bytes=100", Dead("timeout", "--fetch-timeout")),
    "not_found": ("/status/404/x.jpg", Dead("http_404", "404")),
}


def test_hostile_urls(http_server, tmp_path):
    path, rows = media_csv(tmp_path, {case: http_server.url(route) for case, (route, _) in URL_CASES.items()})
    started = time.monotonic()
    out = prepare(tmp_path / "out", [path], "--is-labeled", "--allow-private-network",
                  "--fetch-timeout", "1", "--fetch-retries", "0")
    assert time.monotonic() - started < 60
    found = outcomes_by_label(out, rows)
    for case, (_, expected) in URL_CASES.items():
        check(case, found.get(case), expected)


# --- the decode sandbox itself -------------------------------------------------------------------------


GOOD_MESH = (f"OFF\n4 4 0\n{make_corpus.TETRAHEDRON}{make_corpus.TETRA_FACES}".encode(), "off")


def clouds(items: list, options: MediaOptions) -> list:
    """The points (or MediaError) decode_sandbox.point_cloud gives for each (bytes, file type) item, in order."""
    results = [decode_sandbox.point_cloud(*item, options) for item in items]
    return [r if isinstance(r, MediaError) else r.points for r in results]


def deep_mesh() -> tuple[bytes, str]:
    """A glTF that keeps trimesh busy for minutes (a chain of 100,000 nested nodes)."""
    return make_corpus.node_chain_gltf(100_000, make_corpus.TRIANGLE_DATA_URI), "gltf"


def mesh_items(folder: Path) -> list[tuple[bytes, str]]:
    return [(path.read_bytes(), path.suffix[1:]) for path in sorted(folder.glob("*.off"))]


def test_sandbox_gives_the_same_results_as_decoding_in_process(tmp_path):
    """Clouds are bit-identical and images equal, whether decoded in the worker or in the child."""
    meshes = mesh_items(make_corpus.write_meshes(tmp_path / "meshes")["nan_vertex_off"].parent)
    images = [p.read_bytes() for p in make_corpus.write_images(tmp_path / "images").values()]
    guarded, unguarded = MediaOptions(point_cloud_size=32, image_size=16), MediaOptions(point_cloud_size=32, image_size=16, decode_timeout=0)
    for a, b in zip(clouds(meshes, guarded), clouds(meshes, unguarded)):
        assert type(a) is type(b) and (vars(a) == vars(b) if isinstance(a, MediaError) else np.array_equal(a, b))
    for data in images:
        a, b = decode_sandbox.decode_image(data, guarded), decode_sandbox.decode_image(data, unguarded)
        assert (vars(a) == vars(b)) if isinstance(a, MediaError) else a == b


def test_a_hanging_file_is_stopped_and_the_next_file_decodes(tmp_path):
    options = MediaOptions(point_cloud_size=8, decode_timeout=1)
    clouds([GOOD_MESH], options)  # start the child outside the timed part
    started = time.monotonic()
    stopped, after = clouds([deep_mesh(), GOOD_MESH], options)
    assert stopped.reason_class == "decode_timeout" and "--decode-timeout 1s" in stopped.reason
    assert after.shape == (8, 3)
    assert time.monotonic() - started < 1 + 30, "the hang was not cut at --decode-timeout (30 s for a restart)"


def test_a_crashing_decoder_is_a_dead_letter_and_restarted(tmp_path):
    """A child killed by a signal in the middle of a file (what a segfaulting decoder does) is reported
    with the signal, and the next file gets a fresh child."""
    options = MediaOptions(point_cloud_size=8, decode_timeout=30)
    clouds([GOOD_MESH], options)
    child, slow = decode_sandbox._sandbox()._child, deep_mesh()
    threading.Timer(2.0, os.kill, (child.pid, signal.SIGSEGV)).start()  # the child is busy with `slow` by then
    crashed, after = clouds([slow, GOOD_MESH], options)
    assert crashed.reason_class == "decode_crashed" and "SIGSEGV" in crashed.reason
    assert after.shape == (8, 3) and decode_sandbox._sandbox()._child.pid != child.pid


def test_decode_timeout_0_decodes_in_process():
    before = decode_sandbox._children.copy()
    assert clouds([GOOD_MESH], MediaOptions(point_cloud_size=8, decode_timeout=0))[0].shape == (8, 3)
    assert decode_sandbox._children == before, "--decode-timeout 0 started a child process"
