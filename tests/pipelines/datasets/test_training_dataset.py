"""TrainingDataset under real torch DataLoaders: every document once per epoch across 2 ranks (torch.distributed
over gloo on loopback, two processes) x 3 workers, resumption with torchdata's StatefulDataLoader, seeded
orders, images decoded in the workers, point clouds collated into tensors, and torch imported only when used.

The quora example (2,000 labelled questions) is prepared with --shard-rows 90 (23 row groups: more than the
6 readers) and with --shard-rows 700 (3 row groups: each reader takes a slice of each)."""
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

import pipelines
from conftest import TEST_DATA, run_prepare
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
WORKERS = 3
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # 3 workers on 2 cores


def prepare_quora(out: Path, shard_rows: int) -> Path:
    assert main(["prepare", "--input", str(EXAMPLES / "quora-labeled.csv"), "--is-labeled", "--output", str(out),
                 "--shard-rows", str(shard_rows), "--format", "parquet"]) == 0
    return out


@pytest.fixture(scope="module", params=[90, 700], ids=["23-row-groups", "3-row-groups"])
def quora(request, tmp_path_factory) -> Path:
    return prepare_quora(tmp_path_factory.mktemp("training") / "quora", request.param)


@pytest.fixture(scope="module")
def all_ids(quora) -> list[str]:
    return pipelines.load_table(str(quora), ["id"]).column("id").to_pylist()


def loader_ids(loader) -> list[str]:
    return [i for batch in loader for i in batch["id"]]


RANK_SCRIPT = """
import json, sys
import torch.distributed as dist
from torch.utils.data import DataLoader
import pipelines

url, rank, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
dataset = pipelines.TrainingDataset(url, shuffle_seed=7)        # rank and world size from torch.distributed
epochs = []
for epoch in range(2):
    dataset.set_epoch(epoch)
    epochs.append([i for batch in DataLoader(dataset, batch_size=50, num_workers=3) for i in batch["id"]])
dist.barrier()
json.dump({"rank": dataset.rank, "world_size": dataset.world_size, "epochs": epochs}, open(out, "w"))
dist.destroy_process_group()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_ranks_of_three_workers_see_every_document_once_per_epoch(quora, all_ids, tmp_path):
    port, env = free_port(), dict(os.environ, PYTHONPATH=str(ROOT))
    ranks = [subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(quora), str(rank), str(port),
                               str(tmp_path / f"rank{rank}.json")], env=env, stderr=subprocess.PIPE, text=True)
             for rank in range(2)]
    for process in ranks:
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors[-3000:]
    seen = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert [(s["rank"], s["world_size"]) for s in seen] == [(0, 2), (1, 2)]
    for epoch in range(2):
        together = seen[0]["epochs"][epoch] + seen[1]["epochs"][epoch]
        assert sorted(together) == sorted(all_ids), f"epoch {epoch}: not every document exactly once"
        assert set(seen[0]["epochs"][epoch]).isdisjoint(seen[1]["epochs"][epoch])
    assert seen[0]["epochs"][0] != seen[0]["epochs"][1], "set_epoch did not change the order"


@pytest.mark.parametrize("seed", [None, 3])
def test_a_resumed_stateful_dataloader_yields_exactly_the_rest(quora, seed):
    def loader(dataset):
        return StatefulDataLoader(dataset, batch_size=32, num_workers=WORKERS)

    first = loader(pipelines.TrainingDataset(str(quora), shuffle_seed=seed, shuffle_buffer=300))
    batches = iter(first)
    head = [i for _, batch in zip(range(7), batches) for i in batch["id"]]
    state = first.state_dict()
    rest = [i for batch in batches for i in batch["id"]]

    resumed = loader(pipelines.TrainingDataset(str(quora), shuffle_seed=seed, shuffle_buffer=300))
    resumed.load_state_dict(json.loads(json.dumps(state, default=int)))
    assert loader_ids(resumed) == rest
    assert len(head) == 7 * 32 and len(head) + len(rest) == 2000


def test_the_dataset_state_resumes_mid_batch_without_workers(quora, all_ids):
    dataset = pipelines.TrainingDataset(str(quora), shuffle_seed=1, shuffle_buffer=100)
    samples = iter(dataset)
    head = [next(samples)["id"] for _ in range(301)]  # past a 256-row read batch, inside the next
    state = json.loads(json.dumps(dataset.state_dict()))
    rest = [sample["id"] for sample in samples]
    again = pipelines.TrainingDataset(str(quora), shuffle_seed=1, shuffle_buffer=100)
    again.load_state_dict(state)
    assert [sample["id"] for sample in again] == rest
    assert sorted(head + rest) == sorted(all_ids)


def test_seeds_and_epochs_give_orders_and_the_same_seed_the_same_order(quora, all_ids):
    def order(seed, epoch=0):
        dataset = pipelines.TrainingDataset(str(quora), shuffle_seed=seed)
        dataset.set_epoch(epoch)
        return loader_ids(DataLoader(dataset, batch_size=100, num_workers=2))

    assert order(0) == order(0)
    assert order(0) != order(1) and order(0) != order(0, epoch=1)
    assert sorted(order(1)) == sorted(all_ids)
    assert loader_ids(DataLoader(pipelines.TrainingDataset(str(quora)), batch_size=100)) == all_ids  # file order


def test_text_samples_are_id_label_and_text(quora):
    table = pipelines.load_table(str(quora), ["id", "label", "text"]).to_pylist()
    assert list(pipelines.TrainingDataset(str(quora))) == table


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Real photos from tests/data/images, labelled, Parquet only."""
    tmp = tmp_path_factory.mktemp("training-images")
    rows = [("hopper.jpg", "hopper"), ("flower.jpg", "flower"), ("flower2.jpg", "flower"), ("apple.png", "apple"),
            ("05978.jpg", "person"), ("05979.jpg", "person")]
    (tmp / "images.csv").write_text("".join(f"{TEST_DATA / 'images' / name},{label}\n" for name, label in rows))
    return run_prepare(tmp, tmp / "images.csv", "--is-labeled", "--format", "parquet")


def to_tensors(sample: dict) -> dict:
    """A transform: the image as a 3x32x32 uint8 tensor, the label kept, and the process that decoded it."""
    image = np.asarray(sample["image"].convert("RGB").resize((32, 32)))
    return {"image": torch.from_numpy(image.copy()).permute(2, 0, 1), "label": sample["label"], "id": sample["id"],
            "pid": os.getpid()}


def test_images_are_decoded_and_transformed_in_the_workers(images):
    stored = {row["id"]: row["blob"] for row in pipelines.load_table(str(images), ["id", "blob"]).to_pylist()}
    loader = DataLoader(pipelines.TrainingDataset(str(images), transform=to_tensors), batch_size=4, num_workers=2)
    batches = list(loader)
    assert sum(len(batch["id"]) for batch in batches) == len(stored) == 6
    for batch in batches:
        assert batch["image"].shape[1:] == (3, 32, 32) and batch["image"].dtype == torch.uint8
        assert os.getpid() not in batch["pid"].tolist(), "decoded in the main process, not in a worker"
        for i, identifier in enumerate(batch["id"]):
            expected = np.asarray(Image.open(io.BytesIO(stored[identifier])).convert("RGB").resize((32, 32)))
            assert np.array_equal(batch["image"][i].permute(1, 2, 0).numpy(), expected)


def test_point_clouds_collate_into_tensors(tmp_path):
    out = run_prepare(tmp_path, EXAMPLES / "labeled-meshes.csv", "--is-labeled", "--header", "no",
                      "--format", "parquet")
    clouds = pipelines.load_table(str(out), ["id", "point_cloud"]).to_pylist()
    batch = next(iter(DataLoader(pipelines.TrainingDataset(str(out)), batch_size=len(clouds))))
    assert batch["points"].shape == (len(clouds), 2048, 3) and batch["points"].dtype == torch.float32
    expected = {row["id"]: np.asarray(row["point_cloud"], np.float32) for row in clouds}
    for identifier, points in zip(batch["id"], batch["points"]):
        assert np.array_equal(points.numpy(), expected[identifier])


def test_scored_pairs_give_both_sentences_and_the_score(tmp_path):
    out = run_prepare(tmp_path, EXAMPLES / "seed-scores.csv", "--header", "no", "--format", "parquet")
    samples = list(pipelines.TrainingDataset(str(out)))
    assert samples and all(set(s) == {"id", "score", "chunks"} for s in samples)
    scores = {tuple(s["chunks"]): s["score"] for s in samples}
    assert scores[("The weather is nice", "The weather is beautiful")] == 0.9
    assert scores[("The weather is nice", "The weather is bad")] == 0


def test_pipelines_imports_torch_only_for_the_training_dataset():
    probe = "import sys, pipelines; pipelines.stream; pipelines.load_table; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
