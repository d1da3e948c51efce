"""pipelines.datasets.preview: the point-cloud projection, and `finetune-etl preview` on a meshes dataset."""
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_prepare
from pipelines.cli import main
from pipelines.datasets.contact_sheet import LETTERBOX, caption_height
from pipelines.datasets.preview import DEPTH_COLOURS, depth_colours, in_front, render_cloud, splats, view_rotation


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    """examples/labeled-meshes.csv prepared with small point clouds (6 meshes, 4 labels)."""
    return run_prepare(tmp_path_factory.mktemp("meshes"), ROOT / "examples" / "labeled-meshes.csv", "--is-labeled",
                       "--point-cloud-size", "300", "--format", "parquet", "--decode-timeout", "0")


def test_view_rotation_is_a_rotation_with_z_up():
    rotation = view_rotation()
    assert np.allclose(rotation @ rotation.T, np.eye(3)) and np.isclose(np.linalg.det(rotation), 1)
    right, up, towards = rotation @ np.array([0, 0, 1.0])
    assert up > 0.9 and np.isclose(right, 0)  # z points up the picture (seen from 20 degrees above)
    assert (rotation @ np.array([0, 1.0, 0]))[2] < 0 and (rotation @ np.array([0, -1.0, 0]))[2] > 0


def test_splats_are_discs_clipped_to_the_canvas():
    pixel, point = splats(np.array([0, 5]), np.array([0, 5]), 1, 10)
    assert sorted(pixel[point == 0].tolist()) == [0, 1, 10, 11]  # a corner keeps the quarter inside
    assert sorted(pixel[point == 1].tolist()) == [44, 45, 46, 54, 55, 56, 64, 65, 66]
    pixel, point = splats(np.array([50]), np.array([50]), 3, 100)
    assert len(pixel) == len(set(pixel.tolist())) and 25 <= len(pixel) < 49  # round, not square


def test_depth_colours_run_from_far_purple_to_near_yellow():
    colours = depth_colours(np.array([0.0, 0.125, 0.5, 1.0]))
    assert colours.dtype == np.uint8
    assert colours[0].tolist() == DEPTH_COLOURS[0].tolist() and colours[-1].tolist() == DEPTH_COLOURS[-1].tolist()
    assert colours[1].tolist() == np.rint((DEPTH_COLOURS[0] + DEPTH_COLOURS[1]) / 2).tolist()
    assert colours[2].tolist() == DEPTH_COLOURS[2].tolist()


def test_a_point_behind_a_surface_is_hidden():
    grid = np.linspace(-1, 1, 30)
    x, y = np.meshgrid(grid, grid)
    front = np.c_[x.ravel(), y.ravel(), np.full(x.size, 1.0)]
    view = np.vstack([front, [[0.0, 0.0, -1.0], [0.5, 0.5, 0.99]]])
    visible = in_front(view, 0.3)
    assert visible[:len(front)].all() and not visible[-2] and visible[-1]


def test_the_picture_does_not_depend_on_the_clouds_position_or_scale():
    rng = np.random.default_rng(3)
    cloud = rng.normal(size=(400, 3)) * [1, 2, 0.5]
    drawn = np.asarray(render_cloud(cloud, 64))
    assert np.array_equal(drawn, np.asarray(render_cloud(cloud * 7.5 + [100, -3, 42], 64)))
    assert drawn.shape == (64, 64, 3) and (drawn != LETTERBOX).any()


def test_preview_writes_a_webp_grid_of_every_mesh(meshes, tmp_path, capsys):
    output = tmp_path / "clouds.webp"
    assert main(["preview", str(meshes), "--output", str(output), "--tile", "48", "--columns", "6"]) == 0
    sheet = Image.open(output)
    assert sheet.format == "WEBP" and sheet.size == (6 * 48, 48 + caption_height(48))
    line = capsys.readouterr().out.strip()
    assert line.startswith("finetune-etl: wrote 6 point clouds in 6 columns x 1 row (288x")
    assert line.endswith(f"to {output} (the dataset holds only 6 point clouds, fewer than --count 16: showing all)")


def test_each_mesh_gets_its_own_picture(meshes, tmp_path):
    output = tmp_path / "clouds.png"
    assert main(["preview", str(meshes), "--output", str(output), "--tile", "48", "--columns", "6"]) == 0
    pixels = np.asarray(Image.open(output).convert("RGB"))
    tiles = [pixels[2:46, 48 * k + 2:48 * k + 46].tobytes() for k in range(6)]
    assert len(set(tiles)) == 6
