"""The media stage end to end: `finetune-etl prepare` on CSVs that point at real images and meshes, read
from local paths, a loopback HTTP server (tests/http_server.py) and a fake GCS (tests/gcs_emulator.py).

The real files are tests/data/images and tests/data/meshes (SOURCES.md there says which load and
which fail); tests that need them skip when they are missing. Every run is checked against the README:
good rows are documents with the media loaded, a file that cannot be loaded makes its document a dead
letter of stage `media`, and the counts reconcile with `documents_rejected`.

A column's modality comes from its values' extensions (README: "a URI or path ending in an image or mesh
extension"), so URLs of the server's /status/<code> route, whose path cannot have one, carry a
`/x.jpg` suffix: the server ignores it, the modality check sees an image URI.
Images and meshes go in separate CSVs: one column holds one modality (a mesh in an image column is a
`modality` dead letter of the layout stage, as the README says).
"""
import io
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import trimesh
from PIL import Image, ImageOps

import pipelines
from conftest import run_prepare
from schemas.documents import KEY
from transforms.coders import RecordBatchCoder
from transforms.layout import LayoutSpec, apply_layout
from transforms.media.load_media import SPREAD_KEYS, cut, keyed_bytes
from transforms.media.meshes import point_cloud
from conftest import TEST_DATA, assert_reconciled


DATA = TEST_DATA.resolve()
IMAGES = DATA / "images"
MESHES = DATA / "meshes"
CLOUD = 2048
# Fast, loopback-friendly fetching. There is no backoff option: retries wait 0.5 s, 1 s (the default).
HTTP_ARGS = ("--allow-private-network", "--fetch-timeout", "0.5", "--fetch-retries", "2")
# Files of 5 distinct points and no faces: sampled from their points with --min-points 5 or less, and
# too_few_points dead letters with the default (64).
POINT_FILES = {"points_ascii.ply", "points_bin.ply"}


# --- helpers ---------------------------------------------------------------------------------------


def sources(folder: Path) -> dict[str, str]:
    """file name -> the 'loads with the reference library' column of folder/SOURCES.md."""
    rows = [line.split("|") for line in (folder / "SOURCES.md").read_text().splitlines() if line.startswith("| ")]
    return {cells[1].strip(): cells[5].strip() for cells in rows if cells[1].strip() != "file"}


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != "SOURCES.md")


@pytest.fixture(scope="module")
def images() -> Path:
    return IMAGES


@pytest.fixture(scope="module")
def meshes() -> Path:
    return MESHES


def labeled_csv(uris, label: str = "thing") -> str:
    """One labeled row per URI; row i (1-based) is URI i - 1."""
    return "".join(f"{uri},{label}-{i % 3}\n" for i, uri in enumerate(uris))


def rows_by_source(out: Path) -> dict[int, dict]:
    table = pipelines.load_table(str(out))
    rows = {r["source_row"]: r for r in table.to_pylist()}
    assert len(rows) == table.num_rows, "two documents claim the same source_row"
    return rows


def dead_by_source(out: Path) -> dict[int, dict]:
    letters = pipelines.load_dead_letters(str(out)).to_pylist()
    by_row = {d["source_row"]: d for d in letters}
    assert len(by_row) == len(letters), f"two dead letters for one row: {letters}"
    return by_row


def load_duplicates_table(out: Path) -> list[dict]:
    manifest = pipelines.load_manifest(str(out))
    return [row for shard in manifest["shards"]["duplicates"] for row in pq.read_table(out / shard["path"]).to_pylist()]


reconciled = assert_reconciled  # the README's media-aware equations, and the manifest's own verdict


def upright(path_or_bytes) -> tuple[str, tuple[int, int]]:
    """(MIME type, size as a viewer shows it: after EXIF orientation) by Pillow."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as img:
        mime = "image/jpeg" if img.format == "MPO" else Image.MIME[img.format]
        return mime, ImageOps.exif_transpose(img).size


def cloud(row_or_chunk) -> np.ndarray:
    return np.asarray(row_or_chunk["point_cloud"], dtype=np.float32)


def assert_cloud_of(points: np.ndarray, mesh_path: Path, count: int = CLOUD) -> None:
    """A finite (count, 3) cloud inside the bounding box trimesh gives the file (or made of its points)."""
    assert points.shape == (count, 3) and np.isfinite(points).all(), (mesh_path.name, points.shape)
    if mesh_path.name in POINT_FILES:
        vertices = np.asarray(trimesh.load(mesh_path, process=False).vertices, np.float32)
        assert {tuple(p) for p in points} <= {tuple(v) for v in vertices}, mesh_path.name
        return
    bounds = trimesh.load(mesh_path, force="mesh", process=False).bounds
    slack = 1e-4 * float(np.linalg.norm(bounds[1] - bounds[0])) + 1e-6
    assert (points >= bounds[0] - slack).all() and (points <= bounds[1] + slack).all(), mesh_path.name


# --- 1. HTTP ---------------------------------------------------------------------------------------

HTTP_IMAGES = ("hopper.jpg", "05978.jpg", "flower.jpg", "hopper_orientation_6.jpg", "flower2.jpg")
# (route, expected: a served file name for a document, or the dead letter's reason_class, requests made)
HTTP_IMAGE_ROWS = [
    ("/files/hopper.jpg", "hopper.jpg", 1),
    ("/files/05978.jpg", "05978.jpg", 1),
    ("/status/404/missing.jpg", "http_404", 1),            # final: not retried
    ("/status/403/secret.jpg", "http_403", 1),
    ("/flaky/1/flower.jpg", "flower.jpg", 2),                    # 500, then the file
    ("/429/hopper_orientation_6.jpg", "hopper_orientation_6.jpg", 2),  # 429 Retry-After: 0, then the file
    ("/slow/slow.jpg", "timeout", 3),                             # 2 s > --fetch-timeout 0.5, every attempt
    ("/truncated/flower2.jpg", "truncated", 3),                  # half the declared body, every attempt
]
HTTP_MESHES = ("cube.off", "ballA.off")
HTTP_MESH_ROWS = [
    ("/files/cube.off", "cube.off", 1),
    ("/flaky/1/ballA.off", "ballA.off", 2),
    ("/status/404/gone.off", "http_404", 1),
]


@pytest.fixture
def served(http_server, images, meshes):
    for name in HTTP_IMAGES:
        shutil.copy(images / name, http_server.root / name)
    for name in HTTP_MESHES:
        shutil.copy(meshes / name, http_server.root / name)
    return http_server


def test_http_images_load_and_failures_become_dead_letters(served, tmp_path):
    uris = [served.url(route) for route, _, _ in HTTP_IMAGE_ROWS]
    out = run_prepare(tmp_path, labeled_csv(uris), "--is-labeled", *HTTP_ARGS)

    docs, dead = rows_by_source(out), dead_by_source(out)
    served_bytes = 0
    for row, (route, expected, _) in enumerate(HTTP_IMAGE_ROWS, start=1):
        if expected in HTTP_IMAGES:
            data = (served.root / expected).read_bytes()
            served_bytes += len(data)
            doc = docs.pop(row)
            assert doc["uri"] == uris[row - 1] and doc["modality"] == "image"
            assert doc["blob"] == data, route
            assert (doc["mime_type"], (doc["width"], doc["height"])) == upright(data), route
            assert doc["label"] == f"thing-{(row - 1) % 3}"
        else:
            letter = dead.pop(row)
            assert (letter["stage"], letter["reason_class"]) == ("media", expected), letter
            assert uris[row - 1] in letter["reason"] and letter["raw"] == f"{uris[row - 1]},thing-{(row - 1) % 3}"
            assert letter["source_file"].endswith(".csv")
    assert docs == {} and dead == {}
    # hopper_orientation_6.jpg is 128x128 either way; 05978.jpg is portrait (200x245).
    assert (rows_by_source(out)[2]["width"], rows_by_source(out)[2]["height"]) == (200, 245)

    for route, _, requests in HTTP_IMAGE_ROWS:
        if route.startswith("/truncated/"):
            # The fetcher makes exactly `requests` attempts (its reason says so). The server may count one
            # fewer: on a loaded machine an attempt can time out (0.5 s) before the server's thread has read
            # the request, and a connection closed before its request line is read is no request to it.
            letter = next(d for d in dead_by_source(out).values() if d["reason_class"] == "truncated")
            assert f"gave up after {requests} attempts" in letter["reason"], letter
            assert requests - 1 <= served.hits[route] <= requests, (route, dict(served.hits))
            continue
        assert served.hits[route] == requests, (route, dict(served.hits))
    c = reconciled(out)
    assert c["rows_read"] == len(HTTP_IMAGE_ROWS)
    assert (c["documents_written"], c["documents_rejected"]) == (4, 4)
    assert c["media_files"] == len(HTTP_IMAGE_ROWS) and c["bytes_fetched"] == served_bytes
    for reason_class in ("http_404", "http_403", "timeout", "truncated"):
        assert c[f"dead_letters.media.{reason_class}"] == 1, c


def test_http_meshes_load_into_point_clouds(served, tmp_path):
    uris = [served.url(route) for route, _, _ in HTTP_MESH_ROWS]
    out = run_prepare(tmp_path, labeled_csv(uris, "mesh"), "--is-labeled", *HTTP_ARGS)

    docs, dead = rows_by_source(out), dead_by_source(out)
    for row, (route, expected, requests) in enumerate(HTTP_MESH_ROWS, start=1):
        assert served.hits[route] == requests, (route, dict(served.hits))
        if expected in HTTP_MESHES:
            doc = docs[row]
            assert doc["modality"] == "mesh" and doc["blob"] is None and doc["uri"] == uris[row - 1]
            points = cloud(doc)
            assert_cloud_of(points, served.root / expected)
            # The served bytes, sampled with their own seed (the pipeline's own function on the same input).
            data = (served.root / expected).read_bytes()
            np.testing.assert_array_equal(points, point_cloud(data, "off", CLOUD))
        else:
            assert (dead[row]["stage"], dead[row]["reason_class"]) == ("media", expected)
    assert len(docs) == 2 and len(dead) == 1
    c = reconciled(out)
    assert c["documents_rejected"] == 1 and c["media_files"] == 3


def test_loopback_urls_are_refused_without_allow_private_network(served, tmp_path):
    uris = [served.url(route) for route, _, _ in HTTP_IMAGE_ROWS]
    args = [a for a in HTTP_ARGS if a != "--allow-private-network"]
    out = run_prepare(tmp_path, labeled_csv(uris), "--is-labeled", *args)

    assert pipelines.load_table(str(out)).num_rows == 0
    dead = dead_by_source(out)
    assert sorted(dead) == list(range(1, len(uris) + 1))
    for row, letter in dead.items():
        assert (letter["stage"], letter["reason_class"]) == ("media", "private_address"), letter
        assert "--allow-private-network" in letter["reason"] and uris[row - 1] in letter["reason"]
    assert sum(served.hits.values()) == 0, dict(served.hits)
    c = reconciled(out)
    assert c["documents_rejected"] == len(uris) and c.get("bytes_fetched", 0) == 0


def test_mesh_url_with_its_extension_in_the_query_is_not_fetched_in_vain(served, tmp_path):
    """A URL whose extension is only in its query (`.../redirect?to=/files/cube.off&name=cube.off`) is not a
    mesh URI: the extension must come before any ?query. In a mesh column it is a layout dead letter and
    nothing is fetched for it (it used to be taken for a mesh, fetched, then refused for having no type)."""
    route = "/redirect?to=/files/cube.off&name=cube.off"
    uri = served.url(route)
    mesh = served.url("/files/cube.off")
    out = run_prepare(tmp_path, labeled_csv([mesh, mesh, uri], "mesh"), "--is-labeled", *HTTP_ARGS)

    docs, dead = rows_by_source(out), dead_by_source(out)
    assert cloud(docs[1]).shape == (CLOUD, 3) and cloud(docs[2]).shape == (CLOUD, 3)
    assert dead[3]["stage"] == "layout" and dead[3]["reason_class"] == "modality"
    assert served.hits[route] == 0


# --- 7. --no-fetch-remote --------------------------------------------------------------------------


def test_no_fetch_remote_keeps_urls_as_uris_without_requests(served, images, tmp_path):
    uris = [served.url("/files/hopper.jpg"), served.url("/status/404/missing.jpg"),
            served.url("/slow/slow.jpg"), str(images / "flower.jpg")]
    out = run_prepare(tmp_path, labeled_csv(uris), "--is-labeled", "--no-fetch-remote", *HTTP_ARGS)

    docs = rows_by_source(out)
    assert sorted(docs) == [1, 2, 3, 4] and dead_by_source(out) == {}
    for row in (1, 2, 3):
        doc = docs[row]
        assert (doc["modality"], doc["uri"]) == ("image", uris[row - 1])
        assert (doc["blob"], doc["mime_type"], doc["width"], doc["height"]) == (None, None, None, None)
    local = docs[4]  # local files are still loaded: --no-fetch-remote is about remote URLs only
    assert local["blob"] == (images / "flower.jpg").read_bytes() and (local["width"], local["height"]) == (480, 360)
    assert sum(served.hits.values()) == 0, dict(served.hits)
    c = reconciled(out)
    assert c["documents_written"] == 4 and c.get("documents_rejected", 0) == 0


# --- 2. real images --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_images(images, tmp_path_factory):
    """(file list, CSV path, output of the default run) for every file in tests/data/images."""
    tmp = tmp_path_factory.mktemp("images")
    files = files_of(images)
    csv = tmp / "images.csv"
    csv.write_text(labeled_csv(files))
    return files, csv, run_prepare(tmp, csv, "--is-labeled")


def test_sources_md_lists_every_image(images):
    assert set(sources(images)) == {p.name for p in files_of(images)}


def test_real_images_load_with_their_bytes_and_upright_size(all_images, images):
    files, _, out = all_images
    says = sources(images)
    docs, dead = rows_by_source(out), dead_by_source(out)
    failing = {name for name, result in says.items() if result.startswith("fails")}
    assert failing, "SOURCES.md names no failing image"
    for row, path in enumerate(files, start=1):
        if path.name in failing:
            assert row not in docs, path.name
            assert dead[row]["stage"] == "media" and str(path) in dead[row]["reason"], (path.name, dead.get(row))
            continue
        assert row not in dead, (path.name, dead[row])
        doc = docs[row]
        assert doc["uri"] == str(path) and doc["modality"] == "image"
        assert doc["blob"] == path.read_bytes(), path.name
        assert (doc["mime_type"], (doc["width"], doc["height"])) == upright(path), path.name
    assert len(docs) + len(dead) == len(files)
    c = reconciled(out)
    assert (c["rows_read"], c["documents_rejected"], c["media_files"]) == (len(files), len(failing), len(files))
    assert c["bytes_fetched"] == sum(p.stat().st_size for p in files)


def test_image_size_sets_the_shorter_side(all_images, images, tmp_path):
    files, csv, plain = all_images
    out = run_prepare(tmp_path, csv, "--is-labeled", "--image-size", "64")
    original = rows_by_source(plain)
    docs = rows_by_source(out)
    # Files that are the same picture (hopper as BMP, PNG, TIFF...) resize to the same bytes: one document.
    repeats = {r["source_row"]: r for r in load_duplicates_table(out) if r["kind"] == "exact"}
    assert sorted([*docs, *repeats]) == sorted(original) and dead_by_source(out).keys() == dead_by_source(plain).keys()
    assert {r["kept_id"] for r in repeats.values()} <= {d["id"] for d in docs.values()}
    for row, doc in docs.items():
        name, width, height = files[row - 1].name, original[row]["width"], original[row]["height"]
        with Image.open(io.BytesIO(doc["blob"])) as img:
            img.load()  # the blob decodes
        # Upright: images at most 64 px keep their own bytes, EXIF orientation included.
        assert upright(doc["blob"]) == (doc["mime_type"], (doc["width"], doc["height"])), name
        if min(width, height) > 64:
            assert min(doc["width"], doc["height"]) == 64, (name, doc["width"], doc["height"])
            assert math.isclose(doc["width"] / doc["height"], width / height, rel_tol=0.05), name
        else:  # never enlarged, and the file's own bytes
            assert (doc["width"], doc["height"]) == (width, height), name
            assert doc["blob"] == original[row]["blob"], name
    reconciled(out)


def test_image_box_and_format(images, tmp_path):
    names = ["flower.jpg", "123_456.jpg", "pil123rgba.png", "hopper_orientation_6.jpg", "orientation_rectangle.jpg"]
    out = run_prepare(tmp_path, labeled_csv(images / n for n in names), "--is-labeled",
                      "--image-box", "100x50", "--image-format", "webp")
    docs = rows_by_source(out)
    assert sorted(docs) == [1, 2, 3, 4, 5]
    for row, name in enumerate(names, start=1):
        doc, (_, (width, height)) = docs[row], upright(images / name)
        assert doc["mime_type"] == "image/webp", name
        assert upright(doc["blob"]) == ("image/webp", (doc["width"], doc["height"])), name
        if width > 100 or height > 50:  # shrunk to fit the box, touching one of its sides
            assert doc["width"] <= 100 and doc["height"] <= 50, (name, doc["width"], doc["height"])
            assert doc["width"] == 100 or doc["height"] == 50, (name, doc["width"], doc["height"])
            assert math.isclose(doc["width"] / doc["height"], width / height, rel_tol=0.05), name
        else:  # never enlarged
            assert (doc["width"], doc["height"]) == (width, height), name
    reconciled(out)


def test_size_limits_are_dead_letters(images, tmp_path):
    big, small = images / "flower2.jpg", images / "hopper.jpg"  # 86,491 bytes 300x225; 6,412 bytes 128x128
    tiny = images / "orientation_rectangle.jpg"  # 2x1
    out = run_prepare(tmp_path, labeled_csv([big, small, tiny]), "--is-labeled",
                      "--max-media-bytes", "50000", "--max-image-pixels", "10000")
    dead = dead_by_source(out)
    assert dead[1]["reason_class"] == "too_large" and "--max-media-bytes" in dead[1]["reason"]
    assert dead[2]["reason_class"] == "decompression_bomb" and "--max-image-pixels" in dead[2]["reason"]
    assert list(rows_by_source(out)) == [3]
    assert reconciled(out)["documents_rejected"] == 2


def test_no_convert_to_blob_keeps_image_uris(images, tmp_path):
    uris = [images / "hopper.jpg", tmp_path / "does-not-exist.jpg"]
    out = run_prepare(tmp_path, labeled_csv(uris), "--is-labeled", "--no-convert-to-blob")
    docs = rows_by_source(out)
    assert [(docs[r]["uri"], docs[r]["blob"], docs[r]["width"]) for r in sorted(docs)] == [(str(u), None, None) for u in uris]
    assert dead_by_source(out) == {}
    reconciled(out)


# --- 3. real meshes --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_meshes(meshes, tmp_path_factory):
    """(file list, CSV path, tmp folder, output of a single-process run) for every shared mesh."""
    tmp = tmp_path_factory.mktemp("meshes")
    files = files_of(meshes)
    csv = tmp / "meshes.csv"
    csv.write_text(labeled_csv(files, "shape"))
    return files, csv, tmp, run_prepare(tmp, csv, "--is-labeled")


def test_sources_md_lists_every_mesh(meshes):
    assert set(sources(meshes)) == {p.name for p in files_of(meshes)}


def test_real_meshes_give_point_clouds_and_unusable_ones_dead_letters(all_meshes, meshes):
    files, _, _, out = all_meshes
    says = sources(meshes)
    unusable = {n for n, s in says.items() if not s.startswith("loads:")} - POINT_FILES
    assert unusable == {"empty.stl", "empty.obj", "empty.ply", "TestScene.gltf"}
    docs, dead = rows_by_source(out), dead_by_source(out)
    for row, path in enumerate(files, start=1):
        if path.name in unusable | POINT_FILES:
            assert row not in docs, path.name
            assert dead[row]["stage"] == "media" and str(path) in dead[row]["reason"], path.name
            expected = "too_few_points" if path.name in POINT_FILES else "mesh_"
            assert dead[row]["reason_class"].startswith(expected), dead[row]
        else:
            assert row not in dead, (path.name, dead.get(row))
            doc = docs[row]
            assert (doc["modality"], doc["uri"], doc["blob"]) == ("mesh", str(path), None)
            assert doc["point_cloud_from"] == "surface", path.name
            assert_cloud_of(cloud(doc), path)
    assert dead[files.index(meshes / "TestScene.gltf") + 1]["reason_class"] == "mesh_unreadable"
    c = reconciled(out)
    rejected = len(unusable) + len(POINT_FILES)
    assert (c["rows_read"], c["documents_rejected"], c["documents_written"]) == (
        len(files), rejected, len(files) - rejected)


def test_mesh_runs_are_deterministic_across_runs_and_runners(all_meshes):
    files, csv, tmp, first = all_meshes
    again = run_prepare(tmp, csv, "--is-labeled")
    parallel = run_prepare(tmp, csv, "--is-labeled", "--direct_running_mode=multi_processing", "--direct_num_workers=2")

    a, b = rows_by_source(first), rows_by_source(again)
    assert a.keys() == b.keys()
    for row in a:
        np.testing.assert_array_equal(cloud(a[row]), cloud(b[row]), err_msg=files[row - 1].name)
    for kind in ("documents", "dead_letters"):
        shards = pipelines.load_manifest(str(first))["shards"][kind]
        assert shards == pipelines.load_manifest(str(parallel))["shards"][kind]
        for shard in shards:
            one, two = (first / shard["path"]).read_bytes(), (parallel / shard["path"]).read_bytes()
            assert one == two, f"{shard['path']} differs between one process and two worker processes"
            assert pq.read_table(io.BytesIO(one)).num_rows == shard["rows"]


def test_point_cloud_size(meshes, tmp_path):
    """--min-points 5: points_bin.ply's 5 distinct points are enough, and its cloud says it came from points."""
    names = ["cube.off", "teapot.stl", "points_bin.ply", "Duck.glb"]
    out = run_prepare(tmp_path, labeled_csv(meshes / n for n in names), "--is-labeled", "--point-cloud-size", "512",
                      "--min-points", "5")
    docs = rows_by_source(out)
    assert sorted(docs) == [1, 2, 3, 4]
    for row, name in enumerate(names, start=1):
        assert_cloud_of(cloud(docs[row]), meshes / name, count=512)
        assert docs[row]["point_cloud_from"] == ("points" if name in POINT_FILES else "surface"), name


def test_no_create_point_clouds_keeps_mesh_uris(meshes, tmp_path):
    paths = [meshes / "cube.off", meshes / "empty.stl", tmp_path / "missing.obj"]
    out = run_prepare(tmp_path, labeled_csv(paths), "--is-labeled", "--no-create-point-clouds")
    docs = rows_by_source(out)
    got = [(docs[r]["modality"], docs[r]["uri"], docs[r]["point_cloud"]) for r in sorted(docs)]
    assert got == [("mesh", str(p), None) for p in paths]
    assert dead_by_source(out) == {}
    reconciled(out)


# --- 4. CLIP and scores ----------------------------------------------------------------------------


def test_clip_rows_load_the_image_into_the_second_chunk(images, tmp_path):
    shutil.copy(images / "hopper.jpg", tmp_path / "hopper.jpg")  # named relative to the CSV's folder
    text = ("A portrait of Grace Hopper.,hopper.jpg\n"
            f"A pink flower.,{images / 'flower.jpg'}\n"
            f"A portrait of a woman.,{images / '05978.jpg'}\n"
            f"A picture that is not there.,{tmp_path / 'missing.jpg'}\n"
            f"A broken picture.,{images / 'truncated_image.png'}\n")
    csv = tmp_path / "clip.csv"
    csv.write_text(text)
    out = run_prepare(tmp_path, csv)

    manifest = pipelines.load_manifest(str(out))
    assert (manifest["layout"], manifest["clip"]) == ("pairs", True)
    docs, dead = rows_by_source(out), dead_by_source(out)
    expected = {1: ("A portrait of Grace Hopper.", "hopper.jpg", tmp_path / "hopper.jpg"),  # relative: kept so
                2: ("A pink flower.", str(images / "flower.jpg"), images / "flower.jpg"),
                3: ("A portrait of a woman.", str(images / "05978.jpg"), images / "05978.jpg")}
    assert sorted(docs) == sorted(expected)
    for row, (caption, uri, path) in expected.items():
        doc = docs[row]
        assert (doc["modality"], doc["label"], doc["blob"]) == ("pair", None, None)
        text_chunk, image_chunk = doc["chunks"]
        assert (text_chunk["modality"], text_chunk["text"], text_chunk["blob"]) == ("text", caption, None)
        assert (image_chunk["modality"], image_chunk["uri"]) == ("image", uri)
        assert image_chunk["blob"] == path.read_bytes()
        assert (image_chunk["mime_type"], (image_chunk["width"], image_chunk["height"])) == upright(path)
    assert {row: (d["stage"], d["reason_class"]) for row, d in dead.items()} == {
        4: ("media", "missing"), 5: ("media", "truncated")}
    assert str(tmp_path / "missing.jpg") in dead[4]["reason"]
    c = reconciled(out)
    assert (c["documents_written"], c["documents_rejected"]) == (3, 2)


def test_scores_of_image_pairs_load_both_chunks(images, tmp_path):
    pairs = [("05978.jpg", "05979.jpg", "0.9"), ("hopper.jpg", "hopper_gray.jpg", "1"),
             ("flower.jpg", "apple.png", "0"), ("hopper.png", "broken.png", "0.5")]
    text = "".join(f"{images / a},{images / b},{s}\n" for a, b, s in pairs)
    out = run_prepare(tmp_path, text)

    assert pipelines.load_manifest(str(out))["layout"] == "scores"
    docs, dead = rows_by_source(out), dead_by_source(out)
    assert sorted(docs) == [1, 2, 3]
    for row in (1, 2, 3):
        first, second, score = pairs[row - 1]
        doc = docs[row]
        assert (doc["modality"], doc["score"]) == ("pair", float(score))
        for chunk, name in zip(doc["chunks"], (first, second)):
            assert (chunk["modality"], chunk["uri"]) == ("image", str(images / name))
            assert chunk["blob"] == (images / name).read_bytes()
            assert (chunk["mime_type"], (chunk["width"], chunk["height"])) == upright(images / name)
    assert (dead[4]["stage"], dead[4]["reason_class"]) == ("media", "image_unreadable")
    assert str(images / "broken.png") in dead[4]["reason"]
    assert reconciled(out)["documents_rejected"] == 1


# --- 5. --allowed-roots ----------------------------------------------------------------------------


def test_allowed_roots(images, tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    shutil.copy(images / "hopper.jpg", root / "inside.jpg")
    shutil.copy(images / "flower.jpg", root / "sub" / "nested.jpg")
    shutil.copy(images / "05978.jpg", tmp_path / "outside.jpg")
    os.symlink(tmp_path / "outside.jpg", root / "link.jpg")
    uris = [root / "inside.jpg", root / "sub" / "nested.jpg", f"{root}/../outside.jpg", root / "link.jpg"]
    csv = tmp_path / "rooted.csv"
    csv.write_text(labeled_csv(uris))

    out = run_prepare(tmp_path, csv, "--is-labeled", "--allowed-roots", str(root))
    docs, dead = rows_by_source(out), dead_by_source(out)
    assert docs[1]["blob"] == (root / "inside.jpg").read_bytes()
    assert docs[2]["blob"] == (root / "sub" / "nested.jpg").read_bytes()
    assert sorted(docs) == [1, 2] and sorted(dead) == [3, 4]
    for row in (3, 4):
        assert (dead[row]["stage"], dead[row]["reason_class"]) == ("media", "path_not_allowed"), dead[row]
        assert str(tmp_path / "outside.jpg") in dead[row]["reason"]  # it names where the path really goes
    assert reconciled(out)["documents_rejected"] == 2

    anywhere = run_prepare(tmp_path, csv, "--is-labeled")  # without the option the same rows all load
    assert sorted(rows_by_source(anywhere)) == [1, 2, 3, 4]
    assert rows_by_source(anywhere)[4]["blob"] == (tmp_path / "outside.jpg").read_bytes()


# --- 6. gs:// --------------------------------------------------------------------------------------


def test_gcs_media(gcs, images, meshes, tmp_path):
    uploads = {"media/hopper.jpg": images / "hopper.jpg", "media/sub/flower.jpg": images / "flower.jpg",
               "media/ballB.off": meshes / "ballB.off"}
    for key, path in uploads.items():
        gcs.fs.pipe(f"{gcs.bucket}/{key}", path.read_bytes())
    image_uris = [gcs.url("media/hopper.jpg"), gcs.url("media/sub/flower.jpg"), gcs.url("media/nope.jpg")]
    out = run_prepare(tmp_path, labeled_csv(image_uris), "--is-labeled")

    docs, dead = rows_by_source(out), dead_by_source(out)
    for row, key in ((1, "media/hopper.jpg"), (2, "media/sub/flower.jpg")):
        assert docs[row]["uri"] == gcs.url(key)
        assert docs[row]["blob"] == uploads[key].read_bytes()
        assert (docs[row]["mime_type"], (docs[row]["width"], docs[row]["height"])) == upright(uploads[key])
    assert sorted(docs) == [1, 2] and list(dead) == [3]
    assert (dead[3]["stage"], dead[3]["reason_class"]) == ("media", "missing")
    c = reconciled(out)
    assert c["bytes_fetched"] == uploads["media/hopper.jpg"].stat().st_size + uploads["media/sub/flower.jpg"].stat().st_size

    mesh_uri = gcs.url("media/ballB.off")
    out = run_prepare(tmp_path, labeled_csv([mesh_uri]), "--is-labeled")
    (doc,) = rows_by_source(out).values()
    assert (doc["modality"], doc["uri"]) == ("mesh", mesh_uri)
    assert_cloud_of(cloud(doc), meshes / "ballB.off")
    data = uploads["media/ballB.off"].read_bytes()
    np.testing.assert_array_equal(cloud(doc), point_cloud(data, "off", CLOUD))
    assert reconciled(out)["bytes_fetched"] == len(data)


def image_candidates(rows: int) -> pa.RecordBatch:
    """The candidates the layout stage makes of `rows` labeled image paths (its all-null `chunks` included)."""
    records = pa.RecordBatch.from_pydict({"f0": [f"/photos/{i:05d}.jpg" for i in range(rows)], "f1": ["cat"] * rows,
                                          "source_file": ["/d/in.csv"] * rows, "source_row": list(range(10_001, 10_001 + rows))})
    docs, dead, _ = apply_layout(records, LayoutSpec("labeled", ("image",)))
    assert not dead
    return docs


def test_media_batches_cross_the_shuffle_at_their_own_size_whatever_the_batch_they_were_cut_from():
    small, big = image_candidates(64), image_candidates(6400)
    pieces = list(cut(big, 32))
    assert len(pieces) == 200 and [p.num_rows for p in pieces] == [32] * 200
    assert pa.Table.from_batches(pieces).equals(pa.Table.from_batches([big]))
    key, data = keyed_bytes(pieces[-1])
    assert key == pieces[-1].column(KEY)[0].as_py() % SPREAD_KEYS
    assert RecordBatchCoder().decode(data).equals(pieces[-1])
    assert len(data) == len(keyed_bytes(next(cut(small, 32)))[1])  # not 100 times larger
