"""Cloud descriptors on the real meshes of tests/data/meshes: a mesh re-sampled with another seed and
rotated, scaled and moved matches itself and is found through the band keys; different meshes do not
match; exact invariance; batches and odd clouds; golden values."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import TEST_DATA
from transforms.duplicates.candidates import similar_pairs
from transforms.duplicates.cloud_signatures import (CHUNK_POINTS, CLOUD_MATCH, DIMENSIONS, KEYS, MATCH_DISTANCE,
                                                    cloud_band_keys, cloud_distance, cloud_signatures,
                                                    cloud_similarity)
from transforms.media.meshes import load_geometry, sample_point_cloud

MESHES = ["bunny.ply", "box.obj", "fandisk.obj", "Duck.glb", "teapot.stl", "sphere.ply", "suzanne.ply",
          "cylinder.stl", "quadknot.obj", "rabbit.obj", "angle_block.STL", "featuretype.ply", "cycloidal.ply"]
POINTS = 2048
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def geometry(name: str):
    return load_geometry((TEST_DATA / "meshes" / name).read_bytes(), name.rsplit(".", 1)[1])


GEOMETRIES = {name: geometry(name) for name in MESHES}


def moved(cloud: np.ndarray, seed: int) -> np.ndarray:
    """The cloud rotated, scaled and translated at random (seeded)."""
    rng = np.random.default_rng(seed)
    rotation = Rotation.random(random_state=seed).as_matrix()
    return ((cloud.astype(np.float64) @ rotation.T) * rng.uniform(0.05, 20) + rng.normal(0, 50, 3)).astype(np.float32)


def search(signatures: np.ndarray) -> set:
    """The pairs (i, j) the pipeline's search finds among the descriptors."""
    keys = cloud_band_keys(signatures)
    nodes = np.repeat(np.arange(len(signatures), dtype=np.uint64), keys.shape[1])
    pairs = similar_pairs(keys.reshape(-1), nodes, np.repeat(signatures, keys.shape[1], axis=0), cloud_similarity,
                          CLOUD_MATCH)
    return set(zip(pairs.a.tolist(), pairs.b.tolist()))


@pytest.fixture(scope="module")
def originals() -> np.ndarray:
    return cloud_signatures([sample_point_cloud(GEOMETRIES[name], 1, POINTS) for name in MESHES])


def test_a_mesh_resampled_and_moved_matches_itself_and_is_found(originals):
    copies = cloud_signatures([moved(sample_point_cloud(GEOMETRIES[name], 100 + i, POINTS), i)
                               for i, name in enumerate(MESHES)])
    similarity = cloud_similarity(originals, copies)
    assert similarity.min() >= CLOUD_MATCH and cloud_distance(originals, copies).max() < 0.9 * MATCH_DISTANCE
    found = search(np.concatenate([originals, copies]))
    assert {(i, i + len(MESHES)) for i in range(len(MESHES))} <= found


def test_different_meshes_do_not_match(originals):
    """bunny, box, fandisk, duck, teapot, sphere, suzanne... : every pair below CLOUD_MATCH, none found."""
    n = len(MESHES)
    i, j = np.triu_indices(n, 1)
    similarity = cloud_similarity(originals[i], originals[j])
    assert similarity.max() < CLOUD_MATCH and cloud_distance(originals[i], originals[j]).min() > 1.25 * MATCH_DISTANCE
    assert search(originals) == set()


def test_the_same_shape_in_other_files_matches():
    """Cubes are cubes: box.obj, cube.glb and BoxTextured.glb (unit cubes in other formats) match."""
    names = ["box.obj", "cube.glb", "BoxTextured.glb"]
    signatures = cloud_signatures([sample_point_cloud(geometry(n), 5, POINTS) for n in names])
    assert search(signatures) == {(0, 1), (0, 2), (1, 2)}


def test_rotation_scale_translation_leave_the_descriptor_unchanged():
    cloud = sample_point_cloud(GEOMETRIES["bunny.ply"], 3, POINTS)
    signatures = cloud_signatures([cloud, moved(cloud, 7), moved(cloud, 8)])
    np.testing.assert_allclose(signatures[1:], np.repeat(signatures[:1], 2, axis=0), rtol=1e-4, atol=0.05)
    shuffled = cloud[np.random.default_rng(0).permutation(POINTS)]  # another order: other point pairs
    assert cloud_similarity(signatures[:1], cloud_signatures([shuffled]))[0] >= CLOUD_MATCH


def test_a_batch_describes_each_cloud_as_alone():
    """Clouds of different sizes in one batch, across CHUNK_POINTS boundaries, give their own descriptors."""
    clouds = [sample_point_cloud(GEOMETRIES[name], 2, size) for name, size in
              zip(MESHES, [POINTS, 100, 7, POINTS, 3000, 1, CHUNK_POINTS, 2, POINTS, 400, 999, 1000, 5])]
    assert sum(len(c) for c in clouds) > CHUNK_POINTS
    together = cloud_signatures(clouds)
    alone = np.concatenate([cloud_signatures([c]) for c in clouds])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-3)
    assert together.shape == (len(clouds), DIMENSIONS) and together.dtype == np.float32


def test_degenerate_and_empty_clouds():
    point = np.ones((1, 3), dtype=np.float32)
    repeated = np.full((10, 3), 5.0, dtype=np.float32)
    signatures = cloud_signatures([point, repeated])
    assert np.isfinite(signatures).all() and (signatures == 0).all()
    assert cloud_signatures([]).shape == (0, DIMENSIONS)
    with pytest.raises(ValueError, match="at least one point"):
        cloud_signatures([point, np.zeros((0, 3), dtype=np.float32)])


def test_band_keys_are_tagged_and_similarity_is_in_range(originals):
    keys = cloud_band_keys(originals)
    assert keys.shape == (len(MESHES), KEYS) and ((keys >> np.uint64(56)) == np.arange(KEYS, dtype=np.uint64)).all()
    similarity = cloud_similarity(originals, originals[::-1])
    assert ((similarity > 0) & (similarity <= 1)).all() and cloud_similarity(originals, originals).min() == 1.0


def test_golden_values():
    """Pinned: a change of the descriptor (quantiles, pairs, noise scales) shows here."""
    signature = cloud_signatures([sample_point_cloud(GEOMETRIES["bunny.ply"], 1, POINTS)])[0]
    np.testing.assert_allclose(signature[[0, 23, 24, 47, 48, 49, 50]],
                               [70.42, 213.30, 58.46, 476.91, 165.71, 115.96, 92.06], atol=0.01)
