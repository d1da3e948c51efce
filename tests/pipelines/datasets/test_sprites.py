"""`finetune-etl sprites` and `preview`: contact sheets of a prepared dataset's images and point clouds; sprites
of one split, and of each near-duplicate cluster."""
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipelines
from conftest import ROOT, run_prepare
from pipelines.cli import main
from pipelines.datasets.contact_sheet import LETTERBOX, MARGIN, caption_height, choose, load_items, picture, placeholder
from pipelines.datasets.duplicate_sheets import caption, file_cloud_picture, near_clusters
from pipelines.datasets.preview import DEPTH_COLOURS, cloud_points, render_cloud, view_rotation


EXAMPLES = ROOT / "examples"
CLIP_CAPTIONS = ["A portrait of Grace Hopper in uniform.", "A black and white portrait of Grace Hopper.",
                 "A pink flower in a garden.", "An apple."]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict:
    """The bundled examples prepared once: labeled images, CLIP pairs, labeled meshes."""
    tmp = tmp_path_factory.mktemp("datasets")
    return {
        "images": run_prepare(tmp, EXAMPLES / "labeled-images.csv", "--is-labeled"),
        "clip": run_prepare(tmp, EXAMPLES / "clip.csv"),
        "meshes": run_prepare(tmp, EXAMPLES / "labeled-meshes.csv", "--is-labeled"),
    }


def draw(command: str, dataset: Path, output: Path, *args: str) -> Image.Image:
    """Run `finetune-etl COMMAND dataset --output output ...` in-process; returns the picture it wrote."""
    assert main([command, str(dataset), "--output", str(output), *args]) == 0
    return Image.open(output).convert("RGB")


def tiles(sheet: Image.Image, tile: int, columns: int, n: int) -> list[np.ndarray]:
    """The picture area (inside the margins) of each of the first n tiles, as (side, side, 3) arrays."""
    pixels, cell = np.asarray(sheet, dtype=np.float64), tile + caption_height(tile)
    boxes = [((k // columns) * cell, (k % columns) * tile) for k in range(n)]
    return [pixels[y + MARGIN:y + tile - MARGIN, x + MARGIN:x + tile - MARGIN] for y, x in boxes]


def assert_grid(sheet: Image.Image, n: int, tile: int, columns: int, plain_pictures: bool = False) -> None:
    """The sheet is columns x rows cells of tile x (tile + caption) pixels, every tile shows something
    (varied pixels; with plain_pictures, only something else than the empty letterbox), every caption
    holds ink, and cells past n are empty."""
    rows = -(-n // columns)
    assert sheet.size == (columns * tile, rows * (tile + caption_height(tile)))
    pixels = np.asarray(sheet, dtype=np.float64)
    for k, area in enumerate(tiles(sheet, tile, columns, rows * columns)):
        y = (k // columns) * (tile + caption_height(tile)) + tile
        caption = pixels[y:y + caption_height(tile), (k % columns) * tile:(k % columns + 1) * tile]
        if k < n and plain_pictures:
            assert np.abs(area - LETTERBOX).max() > 30, f"tile {k} is empty"
            assert caption.min() < 128, f"caption {k} has no text"
        elif k < n:
            assert area.std() > 10, f"tile {k} looks blank (std {area.std():.1f})"
            assert caption.min() < 128, f"caption {k} has no text"
        else:
            assert area.std() == 0 and caption.min() == 255, f"cell {k} past the {n} tiles is not empty"


def test_sprites_draws_the_labeled_images(datasets, tmp_path, capsys):
    sheet = draw("sprites", datasets["images"], tmp_path / "s.png", "--count", "7", "--tile", "64", "--columns", "3")
    assert_grid(sheet, 7, 64, 3)
    assert "wrote 7 images in 3 columns x 3 rows" in capsys.readouterr().out


def test_sprites_uses_all_images_when_fewer_than_count_and_says_so(datasets, tmp_path, capsys):
    sheet = draw("sprites", datasets["images"], tmp_path / "s.png")
    assert_grid(sheet, 10, 128, 4)  # default --count 36, --tile 128, a square-ish grid
    assert "holds only 10 images, fewer than --count 36: showing all" in capsys.readouterr().out


def test_sprites_of_clip_pairs_shows_their_images_captioned_with_their_text(datasets, tmp_path):
    items = load_items(str(datasets["clip"]), "image", "blob")
    assert sorted(items.captions.to_pylist()) == sorted(CLIP_CAPTIONS)
    assert all(Image.open(io.BytesIO(blob)).size for blob in items.contents.to_pylist())
    assert_grid(draw("sprites", datasets["clip"], tmp_path / "s.png", "--tile", "96"), 4, 96, 2)


def test_label_filter_keeps_only_that_label(datasets, tmp_path):
    items = load_items(str(datasets["images"]), "image", "blob")
    chosen, _ = choose(items, "x", "images", "flower", 36, 0)
    assert chosen.labels.to_pylist() == ["flower", "flower"]
    assert_grid(draw("sprites", datasets["images"], tmp_path / "s.png", "--label", "flower", "--tile", "64"), 2, 64, 2)
    clouds = draw("preview", datasets["meshes"], tmp_path / "p.png", "--label", "ball", "--tile", "64")
    assert_grid(clouds, 3, 64, 2)


def test_sample_is_deterministic_and_grows_with_count(datasets, tmp_path):
    url = str(datasets["images"])
    items = load_items(url, "image", "blob")
    ids = {n: set(choose(items, url, "images", None, n, 7)[0].ids.to_pylist()) for n in (3, 5, 10)}
    assert ids[3] < ids[5] < ids[10] and len(ids[10]) == 10
    samples = {frozenset(choose(items, url, "images", None, 3, seed)[0].ids.to_pylist()) for seed in range(6)}
    assert len(samples) > 1, "every seed drew the same sample"
    for command, dataset in (("sprites", "images"), ("preview", "meshes")):
        args = ("--count", "3", "--seed", "5", "--tile", "64")
        draw(command, datasets[dataset], tmp_path / "a.png", *args)
        draw(command, datasets[dataset], tmp_path / "b.png", *args)
        assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_preview_draws_the_point_clouds(datasets, tmp_path, capsys):
    sheet = draw("preview", datasets["meshes"], tmp_path / "p.png", "--tile", "96")
    assert_grid(sheet, 6, 96, 3)
    assert "wrote 6 point clouds in 3 columns x 2 rows" in capsys.readouterr().out


def test_a_cloud_keeps_its_aspect_and_the_near_side_wins():
    side, rng = 100, np.random.default_rng(0)
    flat = np.c_[rng.uniform(-2, 2, 500), rng.uniform(-2, 2, 500), rng.uniform(-0.1, 0.1, 500)]  # a thin square slab
    drawn = np.asarray(render_cloud(flat, side)).astype(int)
    ink = np.argwhere(np.abs(drawn - drawn[0, 0]).sum(axis=2) > 0)
    height, width = np.ptp(ink, axis=0)
    assert width > 0.9 * side and height < 0.5 * width  # seen from 20 degrees above: wide, foreshortened
    # two points on the centre pixel, one nearer than the other, and two aside (symmetric: centred as given)
    in_view = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 1.0, 0.0], [-1.0, -1.0, 0.0]])
    drawn = np.asarray(render_cloud(in_view @ view_rotation(), side))  # view = points @ rotation.T
    assert tuple(drawn[side // 2, side // 2]) == tuple(DEPTH_COLOURS[-1])  # the nearest one's colour (yellow)


def test_a_blank_cloud_or_one_point_draws_without_error():
    assert np.asarray(render_cloud(np.empty((0, 3)), 40)).std() == 0
    assert np.asarray(render_cloud(np.array([[1.0, 2.0, 3.0]]), 40)).std() > 0
    assert np.asarray(render_cloud(np.array([[np.nan, 0, 0], [0, 0, 0]]), 40)).std() > 0


@pytest.mark.parametrize("args, message", [
    (["sprites", "{images}", "--label", "cat"], "holds no images labeled 'cat'; its labels are 'apple', 'flower', "
                                                "'grace hopper', 'person'"),
    (["preview", "{meshes}", "--label", "cat"], "holds no point clouds labeled 'cat'; its labels are 'ball', "
                                                "'cube', 'monkey', 'teapot'"),
    (["sprites", "{meshes}"], "holds no images; sprites shows image documents"),
    (["preview", "{images}"], "holds no point clouds; preview shows mesh documents"),
    (["sprites", "{missing}"], "holds no complete dataset"),
    (["preview", "{images}", "--output", "{tmp}/p.gif"], "must end in .png, .jpg or .webp"),
    (["sprites", "{images}", "--count", "5000", "--tile", "512"], "ask for fewer or smaller tiles"),
])
def test_user_errors_are_one_line_and_exit_2(datasets, tmp_path, capsys, args, message):
    names = {key: str(value) for key, value in datasets.items()} | {"missing": str(tmp_path / "none"), "tmp": str(tmp_path)}
    argv = [arg.format(**names) for arg in args]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "out.png")]
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("finetune-etl: error: ")
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_commands_run_headless_in_a_fresh_process(datasets, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    script = Path(sys.executable).with_name("finetune-etl")
    for command, dataset in (("sprites", "clip"), ("preview", "meshes")):
        output = tmp_path / f"{command}.png"
        result = subprocess.run([str(script), command, str(datasets[dataset]), "--output", str(output)],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert Image.open(output).format == "PNG"


def test_sixteen_random_clouds_each_render_a_tile_with_ink():
    """Any cloud, whatever its spread, gives a tile of the asked size with some points drawn (its cost is
    measured by the benchmarks, not here)."""
    rng = np.random.default_rng(1)
    for _ in range(16):
        tile = render_cloud(rng.normal(size=(2048, 3)) * rng.uniform(0.5, 2, 3), 124)
        assert tile.size == (124, 124)
        assert len(tile.getcolors(maxcolors=1 << 16) or range(3)) > 2


def test_sprites_and_preview_read_and_write_cloud_storage(datasets, gcs, tmp_path):
    gcs.fs.put(str(datasets["clip"]), f"{gcs.bucket}/clip", recursive=True)
    gcs.fs.put(str(datasets["meshes"]), f"{gcs.bucket}/meshes", recursive=True)
    for command, dataset in (("sprites", "clip"), ("preview", "meshes")):
        local = tmp_path / f"{command}.png"
        assert main([command, str(datasets[dataset]), "--output", str(local)]) == 0
        assert main([command, gcs.url(dataset), "--output", gcs.url(f"sheets/{command}.png")]) == 0
        assert gcs.fs.cat(f"{gcs.bucket}/sheets/{command}.png") == local.read_bytes()


def test_sprites_of_the_real_images(test_data, tmp_path):
    images = sorted(p for p in (test_data / "images").iterdir() if p.suffix != ".md" and p.suffix != ".csv")
    csv = "".join(f"{p},{p.suffix.lstrip('.').lower()}\n" for p in images)
    out = run_prepare(tmp_path, csv, "--is-labeled")
    url = str(out)
    assert len(load_items(url, "image", "blob").ids) > 30
    sheet = draw("sprites", out, tmp_path / "real.png", "--count", "30", "--tile", "64", "--columns", "6")
    assert_grid(sheet, 30, 64, 6, plain_pictures=True)  # exif_gps.jpg is 8 x 8 black pixels
    jpegs = load_items(url, "image", "blob").labels.to_pylist().count("jpg")
    sheet = draw("sprites", out, tmp_path / "jpg.png", "--label", "jpg", "--tile", "64")
    assert_grid(sheet, min(jpegs, 36), 64, math.ceil(math.sqrt(min(jpegs, 36))), plain_pictures=True)


def test_preview_of_text_mesh_pairs_captions_each_cloud_with_its_text(tmp_path):
    csv = f"A cube with a lid., {EXAMPLES / 'meshes/cube.off'}\nA teapot., {EXAMPLES / 'meshes/teapot.stl'}\n"
    out = run_prepare(tmp_path, csv, "--format", "docarray")  # no Parquet: read back from the .docs shards
    items = load_items(str(out), "mesh", "point_cloud")
    assert sorted(items.captions.to_pylist()) == ["A cube with a lid.", "A teapot."]
    assert all(i.endswith("/1") for i in items.ids.to_pylist())  # the mesh is the pair's second chunk
    assert_grid(draw("preview", out, tmp_path / "p.jpg", "--tile", "64"), 2, 64, 2)
    assert Image.open(tmp_path / "p.jpg").format == "JPEG"


def test_images_without_bytes_are_no_images(tmp_path, capsys):
    out = run_prepare(tmp_path, EXAMPLES / "labeled-images.csv", "--is-labeled", "--no-convert-to-blob")
    capsys.readouterr()
    assert main(["sprites", str(out), "--output", str(tmp_path / "s.png")]) == 2
    assert "holds no images; sprites shows image documents" in capsys.readouterr().err


def test_cloud_points_reads_the_stored_layout(datasets):
    items = load_items(str(datasets["meshes"]), "mesh", "point_cloud")
    points = cloud_points(items.contents[0])
    assert points.shape == (2048, 3) and np.isfinite(points).all()


def test_sprites_of_one_split_shows_only_its_images(split_images, tmp_path, capsys):
    documents = pipelines.load_table(str(split_images), columns=["id", "split"])
    url = str(split_images)
    for name in ("train", "test"):
        expected = {i for i, s in zip(documents.column("id").to_pylist(), documents.column("split").to_pylist()) if s == name}
        assert set(load_items(url, "image", "blob", name).ids.to_pylist()) == expected
        sheet = draw("sprites", split_images, tmp_path / f"{name}.png", "--split", name, "--tile", "64", "--columns", "3")
        assert_grid(sheet, len(expected), 64, 3)
        assert f"wrote {len(expected)} images" in capsys.readouterr().out


def test_duplicates_draw_a_sheet_per_cluster(clustered, tmp_path, capsys):
    """Both clusters of three (largest first, ties by kept id), each the kept image, its near duplicate, and
    the removed one: drawn from its file (hopper_gray.jpg) or, its file gone, a placeholder naming it."""
    tile, side = 64, 64 - 2 * MARGIN
    capsys.readouterr()
    assert main(["sprites", str(clustered.out), "--duplicates", "--output", str(tmp_path / "dups.png"), "--tile", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    kept = sorted([clustered.id("hopper.jpg"), clustered.id("flower.jpg")])
    assert [line.split(" (near-duplicate cluster ")[1] for line in lines] == [
        f"{n} of 2: kept {k}, 3 documents, 1 removed)" for n, k in enumerate(kept, start=1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dups-1.png", "dups-2.png"]
    sheets = {k: Image.open(tmp_path / f"dups-{n}.png").convert("RGB") for n, k in enumerate(kept, start=1)}
    for sheet in sheets.values():
        assert_grid(sheet, 3, tile, 2, plain_pictures=True)
    removed = {row["id"]: row["uri"] for row in clustered.rows if row["removed"]}
    media_root = Path(pipelines.load_manifest(str(clustered.out))["media_root"])
    gray = picture((media_root / removed["removed-gray"]).read_bytes(), side)
    expected_gray = Image.new("RGB", (side, side), LETTERBOX)
    expected_gray.paste(gray, ((side - gray.width) // 2, (side - gray.height) // 2))
    assert np.array_equal(tiles(sheets[clustered.id("hopper.jpg")], tile, 2, 3)[2], np.asarray(expected_gray))
    assert not (media_root / removed["removed-gone"]).exists()
    gone = np.asarray(placeholder(["removed", removed["removed-gone"]], side, tile))
    assert np.array_equal(tiles(sheets[clustered.id("flower.jpg")], tile, 2, 3)[2], gone)


def test_cluster_members_and_captions(clustered):
    url = str(clustered.out)
    clusters = near_clusters(pipelines.load_duplicates(url), pipelines.load_table(url, columns=["id", "modality", "label", "uri"]))
    hopper = next(c for c in clusters if c.kept_id == clustered.id("hopper.jpg"))
    assert hopper.modality == "image" and hopper.labels == {"hopper", "hopper copy"}
    assert [caption(m) for m in hopper.members] == [
        f"kept {clustered.id('hopper.jpg')}", f"0.99 {clustered.id('hopper-copy.jpg')}", "0.93 removed removed-gray"]


@pytest.mark.parametrize("args, sheets, tiles_each, last_line", [
    (["--split", "test"], 2, 3, None),
    (["--label", "flower"], 1, 3, None),
    (["--count", "1"], 1, 1, "finetune-etl: drew the 1 largest of 2 near-duplicate clusters (--count 1)."),
])
def test_duplicates_keep_to_split_label_and_count(clustered, tmp_path, capsys, args, sheets, tiles_each, last_line):
    capsys.readouterr()
    assert main(["sprites", str(clustered.out), "--duplicates", "--output", str(tmp_path / "d.png"), "--tile", "64", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"d-{n}.png" for n in range(1, sheets + 1)]
    for n in range(1, sheets + 1):
        assert_grid(Image.open(tmp_path / f"d-{n}.png").convert("RGB"), tiles_each, 64, min(tiles_each, 2), plain_pictures=True)
    assert (out[-1] if last_line else None) == last_line


@pytest.fixture(scope="module")
def mesh_cluster(stand_in, tmp_path_factory) -> Path:
    """The labeled meshes with the three balls in one near-duplicate cluster, and a removed member named by
    a relative uri (meshes/cube.off, under the run's media_root): written by the stand-in (see conftest)."""
    tmp = tmp_path_factory.mktemp("mesh-cluster")
    out = run_prepare(tmp, EXAMPLES / "labeled-meshes.csv", "--is-labeled", "--point-cloud-size", "256", "--format", "parquet")
    balls = sorted((d for d in pipelines.load_table(str(out)).to_pylist() if d["label"] == "ball"), key=lambda d: d["id"])
    kept = balls[0]
    rows = [stand_in.near_row(d, kept["id"], 0.95) for d in balls] + [stand_in.removed_row(kept, 0.8, "meshes/cube.off", "removed-cube")]
    stand_in.duplicates(out, rows, {d["id"]: kept["id"] for d in balls})
    return out


def test_duplicates_of_meshes_draw_point_clouds_and_removed_files(mesh_cluster, tmp_path, capsys):
    assert main(["sprites", str(mesh_cluster), "--duplicates", "--output", str(tmp_path / "m.png"), "--tile", "64"]) == 0
    assert "wrote 4 point clouds in 2 columns x 2 rows" in capsys.readouterr().out
    sheet = Image.open(tmp_path / "m-1.png").convert("RGB")
    assert_grid(sheet, 4, 64, 2)
    cube = file_cloud_picture((EXAMPLES / "meshes" / "cube.off").read_bytes(), "meshes/cube.off", 64 - 2 * MARGIN)
    assert np.array_equal(tiles(sheet, 64, 2, 4)[3], np.asarray(cube))


def test_duplicates_of_a_dataset_without_any_is_one_line(old_split_images, clustered, tmp_path, capsys):
    for url, args, message in ((old_split_images, [], "holds no near-duplicate clusters of images or meshes;"),
                               (clustered.out, ["--split", "train"], "or meshes with a document in split 'train';"),
                               (clustered.out, ["--split", "dev"], "has no split 'dev'; its splits are train, test"),
                               (clustered.out, ["--label", "apple"], "or meshes with a document labeled 'apple';")):
        capsys.readouterr()
        assert main(["sprites", str(url), "--duplicates", "--output", str(tmp_path / "d.png"), *args]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("finetune-etl: error: ")
        assert message in captured.err and len(captured.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_split_the_dataset_lacks_is_one_line(datasets, split_images, tmp_path, capsys):
    for url, message in ((datasets["images"], "has no splits (it was prepared without --split); leave --split out."),
                         (split_images, "has no split 'dev'; its splits are train, test: pass one of them to --split.")):
        capsys.readouterr()
        assert main(["sprites", str(url), "--split", "dev", "--output", str(tmp_path / "s.png")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].endswith(message)
