"""Golden values: the exact outputs of fixed inputs, written down once from the code as it is.

Determinism tests compare runs with each other, so they still pass when the hash constants, the id rule, the
sampler or the point-cloud sampling change for every run alike. These literals catch that. If one of these
tests fails after a deliberate change of those rules, every dataset made before the change has different
ids, samples or clouds than a new run would give: say so in docs/CHANGELOG.md (and raise the version, so that
--incremental-from reuses nothing of older datasets), then update the literals here.
"""
import hashlib
import shutil

import numpy as np

from conftest import ROOT, documents, run_prepare
from transforms.media.meshes import point_cloud

EXAMPLES = ROOT / "examples"


def id_label_text(tmp_path, example: str, *args: str) -> list[tuple]:
    """Run prepare on a copy of examples/<example> -> the sorted (id, label, text) of its documents."""
    source = tmp_path / example
    shutil.copyfile(EXAMPLES / example, source)
    out = run_prepare(tmp_path, source, *args)
    return sorted((doc[0], doc[1], doc[4]) for doc in documents(out, with_ids=True))


def test_seed_pairs(tmp_path):
    """Pairs layout: each query labels itself and its documents; the repeated query "Rice dishes" is one
    document (its duplicate removed)."""
    assert id_label_text(tmp_path, "seed-pairs.csv") == [
        ("01bca231ed944eba", "Vegetable dishes", "Vegetable dishes"),
        ("1248808836bc742c", "Rice dishes", "Ristto"),
        ("1b860a467c1c0cd2", "Pasta dishes", "Spaghetti bolognese"),
        ("380080c16d7428e1", "Pasta dishes", "Pasta dishes"),
        ("bb4bbab14b9f91bf", "Vegetable dishes", "Ratitouille"),
        ("cd815e424c1946b8", "Rice dishes", "Chicken curry"),
        ("db303f8a62e677e2", "Rice dishes", "Rice dishes"),
    ]


SEED_LABELED = [
    ("299459c0a35ca870", "apologize-english", "I'm sorry to have…"),
    ("31e142b732eaee4d", "greeting-english", "Hi there."),
    ("5549f0dde64b36d6", "apologize-english", "Please ... forgive me!"),
    ("8029d481632b0ae5", "apologize-english", "I'm (…) sorry!"),
    ("a449404bab4818d5", "greeting-english", "Hello!"),
    ("d36b99f50b4442b6", "greeting-english", "Good morning."),
]


def test_seed_labeled(tmp_path):
    assert id_label_text(tmp_path, "seed-labeled.csv", "--is-labeled") == SEED_LABELED


def test_seed_labeled_sampled_by_rate(tmp_path):
    """--sampling-rate keeps the rows whose content hash falls below the rate: these three of six."""
    kept = [SEED_LABELED[i] for i in (0, 1, 5)]
    assert id_label_text(tmp_path, "seed-labeled.csv", "--is-labeled", "--sampling-rate", "0.5") == kept


def test_seed_labeled_sampled_by_size(tmp_path):
    """--size keeps the N rows with the smallest content hashes: these two."""
    kept = [SEED_LABELED[i] for i in (1, 5)]
    assert id_label_text(tmp_path, "seed-labeled.csv", "--is-labeled", "--size", "2") == kept


def test_point_cloud_of_a_mesh():
    """examples/meshes/suzanne.ply sampled with the default 2,048 points, seeded by its bytes (0.2.0; 0.1.0
    seeded by the uri: docs/CHANGELOG.md)."""
    data = (EXAMPLES / "meshes" / "suzanne.ply").read_bytes()
    cloud = point_cloud(data, "ply", 2048)
    assert cloud.shape == (2048, 3) and cloud.dtype == np.float32
    assert hashlib.sha256(cloud.tobytes()).hexdigest()[:16] == "371b0dfb026a67c6"
    assert np.round(cloud[:3].astype(np.float64), 6).tolist() == [
        [-0.147276, 0.37114, 0.376614], [-0.699678, 1.87084, 0.079957], [-0.116359, 1.735778, 0.558189]]
