"""Files of points only (no faces): with fewer distinct points than --min-points (64) they are `too_few_points`
dead letters, the others are sampled from their points; every cloud says where it came from (`point_cloud_from`:
"surface" for a mesh's triangles, "points" for a file's points), in documents, chunks and .docs shards."""
import shlex
import shutil

import numpy as np
import pytest

import pipelines
from conftest import TEST_DATA, assert_reconciled, run_prepare
from pipelines.datasets.retry import rerun_command
from schemas.options import MediaOptions
from transforms.media import decode_sandbox
from transforms.media.errors import MediaError
from transforms.media.meshes import POINTS, SURFACE, file_cloud, point_cloud

MESHES = (TEST_DATA / "meshes").resolve()
POINT_FILES = ("points_ascii.ply", "points_bin.ply")  # 5 points each, all distinct, no faces
CUBE = MESHES / "cube.off"  # 8 vertices, 12 triangles
COUNT = 2048


def item(name: str) -> tuple[bytes, str]:
    """A file of tests/data/meshes as file_cloud arguments (bytes, file type)."""
    return (MESHES / name).read_bytes(), name.rsplit(".", 1)[1]


def ply(points) -> bytes:
    """An ASCII PLY of these (n, 3) points and no faces."""
    header = (f"ply\nformat ascii 1.0\nelement vertex {len(points)}\nproperty float x\nproperty float y\n"
              "property float z\nend_header\n")
    return (header + "".join(f"{x} {y} {z}\n" for x, y, z in points)).encode()


def vertices(data: bytes) -> set:
    """The points of an ASCII PLY written by ply(), as float32 tuples."""
    rows = data.decode().split("end_header\n")[1].split()
    return {tuple(p) for p in np.array(rows, np.float32).reshape(-1, 3)}


FIVE = ply(np.random.default_rng(5).random((5, 3)).round(4))


@pytest.mark.parametrize("name", POINT_FILES)
def test_the_shared_point_files_are_too_few_points_with_the_default_minimum(name):
    assert MediaOptions().min_points == 64
    error = file_cloud(*item(name), COUNT, MediaOptions().min_points)
    assert isinstance(error, MediaError) and error.reason_class == "too_few_points"
    assert "only 5 distinct points" in error.reason and "--min-points 64" in error.reason


@pytest.mark.parametrize("name", POINT_FILES)
@pytest.mark.parametrize("min_points", [6, 5, 0])
def test_min_points_around_the_five_points_of_a_file(name, min_points):
    """Above 5 the file is refused; at 5 or below (0: no check) it is sampled from its points, the same cloud
    as without any minimum."""
    result = file_cloud(*item(name), COUNT, min_points)
    if min_points > 5:
        assert isinstance(result, MediaError) and result.reason_class == "too_few_points"
        assert f"--min-points {min_points}" in result.reason
        return
    assert result.origin == POINTS and result.points.shape == (COUNT, 3)
    assert np.array_equal(result.points, point_cloud(*item(name), COUNT))


def test_distinct_points_are_counted_not_rows():
    three = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    data = ply(np.tile(three, (40, 1)))  # 120 rows, 3 distinct points
    error = file_cloud(data, "ply", COUNT, 4)
    assert isinstance(error, MediaError) and "only 3 distinct points" in error.reason
    cloud = file_cloud(data, "ply", COUNT, 3)
    assert cloud.origin == POINTS and {tuple(p) for p in cloud.points} == vertices(data)


def test_meshes_with_faces_are_surfaces_whatever_the_minimum():
    """cube.off has 8 vertices, far fewer than the minimum: its triangles are a surface, never refused."""
    data = CUBE.read_bytes()
    cloud = file_cloud(data, "off", COUNT, 1_000_000)
    assert cloud.origin == SURFACE
    assert np.array_equal(cloud.points, point_cloud(data, "off", COUNT))


@pytest.mark.parametrize("decode_timeout", [30, 0])
def test_the_decoder_child_answers_as_the_worker_does(decode_timeout):
    options = MediaOptions(point_cloud_size=16, decode_timeout=decode_timeout)
    error = decode_sandbox.point_cloud(FIVE, "ply", options)
    assert isinstance(error, MediaError) and error.reason_class == "too_few_points"
    assert vars(error) == vars(file_cloud(FIVE, "ply", 16, 64))
    cloud = decode_sandbox.point_cloud(CUBE.read_bytes(), "off", options)
    assert cloud.origin == SURFACE
    assert np.array_equal(cloud.points, point_cloud(CUBE.read_bytes(), "off", 16))
    options = MediaOptions(point_cloud_size=16, decode_timeout=decode_timeout, min_points=5)
    cloud = decode_sandbox.point_cloud(FIVE, "ply", options)
    assert cloud.origin == POINTS and {tuple(p) for p in cloud.points} <= vertices(FIVE)


def test_a_run_refuses_a_five_point_file_and_marks_the_mesh_as_a_surface(tmp_path):
    (tmp_path / "five.ply").write_bytes(FIVE)
    out = run_prepare(tmp_path, f"{CUBE},cube\nfive.ply,dots\n", "--is-labeled")

    (doc,) = pipelines.load_table(str(out)).to_pylist()
    assert (doc["uri"], doc["label"], doc["point_cloud_from"], len(doc["point_cloud"])) == (
        str(CUBE), "cube", "surface", COUNT)
    (letter,) = pipelines.load_dead_letters(str(out)).to_pylist()
    assert (letter["source_row"], letter["stage"], letter["reason_class"]) == (2, "media", "too_few_points")
    assert letter["raw"] == "five.ply,dots"
    assert "only 5 distinct points" in letter["reason"] and "--min-points 64" in letter["reason"]
    c = assert_reconciled(out)
    assert (c["documents_written"], c["documents_rejected"]) == (1, 1)
    (loaded,) = pipelines.load_docs(str(out))  # read from the .docs shard
    assert loaded.point_cloud_from == "surface"


def test_chunks_say_where_their_clouds_came_from_and_keep_it_when_read_again(tmp_path):
    """--min-points 0 keeps the five points; a scores row of a mesh and the point file is a pair whose chunks
    say "surface" and "points". Read again from its .docs shard (with the default minimum), the clouds are
    kept as they are, and so is what they say; `retry` repeats --min-points 0."""
    (tmp_path / "five.ply").write_bytes(FIVE)
    out = run_prepare(tmp_path, f"{CUBE},five.ply,0.5\n", "--layout", "scores", "--min-points", "0")

    (doc,) = pipelines.load_table(str(out)).to_pylist()
    assert doc["point_cloud_from"] is None and doc["point_cloud"] is None
    assert [c["point_cloud_from"] for c in doc["chunks"]] == ["surface", "points"]
    assert {tuple(p) for p in np.array(doc["chunks"][1]["point_cloud"], np.float32)} <= vertices(FIVE)
    assert_reconciled(out)
    manifest = pipelines.load_manifest(str(out))
    command = shlex.split(rerun_command("r.csv", {"delimiter": ",", "header": False}, manifest, "o"))
    assert command[command.index("--min-points") + 1] == "0"

    (shard,) = (out / "docarray").glob("*.docs")
    shutil.copy(shard, tmp_path / "pairs.docs")
    again = run_prepare(tmp_path, tmp_path / "pairs.docs")
    (read,) = pipelines.load_table(str(again)).to_pylist()
    assert [c["point_cloud_from"] for c in read["chunks"]] == ["surface", "points"]
    assert [c["point_cloud"] for c in read["chunks"]] == [c["point_cloud"] for c in doc["chunks"]]
    assert pipelines.load_dead_letters(str(again)).num_rows == 0


def test_min_points_below_0_is_a_configuration_mistake(tmp_path, capsys):
    run_prepare(tmp_path, f"{CUBE},cube\n", "--is-labeled", "--min-points", "-1", expect_rc=2)
    assert "--min-points -1 must be 0" in capsys.readouterr().err
