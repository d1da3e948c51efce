"""The images case of bench.reader_bench: distinct labeled photos prepared once, then every image decoded by
pyarrow's iter_batches + Pillow (in this process, and split over as many processes as the loader has workers)
and by a torch DataLoader over pipelines.TrainingDataset (in file order and shuffled)."""
from __future__ import annotations

import io
import json
import os
import shlex
import statistics
import subprocess
from concurrent.futures import ProcessPoolExecutor

import pyarrow.parquet as pq
from PIL import Image

from bench.incremental_bench import ensure_photos
from bench.make_photos import LABELS
from bench.summary_bench import ETL

BATCH = 64  # samples per DataLoader batch, and rows per iter_batches batch of the baseline
WORKERS = 2  # DataLoader workers, and processes of the fair baseline
COLUMNS = ["id", "label", "blob"]
ONE, SPLIT = "iter_batches + Pillow, 1 process", f"iter_batches + Pillow, {WORKERS} processes"


def ensure_dataset(workdir: str, images: int) -> str:
    """WORKDIR/out/photos-<images>, prepared with `--header yes --is-labeled --format parquet` from `images`
    distinct 640x480 JPEGs (WORKDIR/photos/, bench.incremental_bench's stamped gradients) and a `path,label`
    CSV naming them, unless complete -> its path."""
    out = os.path.join(workdir, "out", f"photos-{images}")
    if os.path.exists(os.path.join(out, "_SUCCESS")):
        return out
    folder = os.path.join(workdir, "photos")
    ensure_photos(folder, images)
    csv_path = os.path.join(workdir, f"photos-{images}.csv")
    with open(csv_path, "w") as handle:
        handle.write("path,label\n")
        handle.writelines(f"{folder}/{i:06d}.jpg,{LABELS[i % len(LABELS)]}\n" for i in range(images))
    cmd = [ETL, "prepare", "--input", csv_path, "--header", "yes", "--is-labeled", "--format", "parquet",
           "--output", out, "--overwrite"]
    print(f"preparing {out}: {shlex.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def row_groups(out: str) -> list[tuple[str, int]]:
    """The prepared dataset's row groups, in the manifest's shard order -> [(shard path, row group number)]."""
    with open(os.path.join(out, "manifest.json")) as handle:
        shards = [os.path.join(out, s["path"]) for s in json.load(handle)["shards"]["documents"]]
    return [(path, group) for path in shards for group in range(pq.ParquetFile(path).metadata.num_row_groups)]


def describe(out: str) -> str:
    """One line on the dataset and how it is read: documents, shards, row groups, MB, batches."""
    groups = row_groups(out)
    shards = sorted({path for path, _ in groups})
    documents = sum(pq.ParquetFile(path).metadata.num_rows for path in shards)
    return (f"{documents:,} distinct 640x480 JPEGs in {len(shards)} Parquet shards, {len(groups)} row groups, "
            f"{sum(map(os.path.getsize, shards)) / 1e6:,.0f} MB; every reader decodes every image with Pillow, "
            f"{BATCH} samples at a time given to a collate_fn returning their sizes (no tensors); iter_batches "
            f"reads {BATCH}-row batches of {', '.join(COLUMNS)}; the DataLoaders have num_workers={WORKERS}")


def decode(groups: list[tuple[str, int]]) -> int:
    """(shard, row group) pairs -> images decoded: each row group read by iter_batches in BATCH-row batches,
    each batch made a list of sample dicts with the images opened and loaded by Pillow and given to
    image_sizes, as a DataLoader batch is (so both hold a batch of decoded images at a time)."""
    images = 0
    for path, group in groups:
        for batch in pq.ParquetFile(path).iter_batches(BATCH, row_groups=[group], columns=COLUMNS):
            ids, labels, blobs = (batch.column(name).to_pylist() for name in COLUMNS)
            samples = [{"id": i, "label": label, "image": loaded(blob)} for i, label, blob in zip(ids, labels, blobs)]
            images += len(image_sizes(samples))
    return images


def loaded(blob: bytes) -> Image.Image:
    """Encoded image bytes -> the image, opened and decoded by Pillow."""
    image = Image.open(io.BytesIO(blob))
    image.load()
    return image


def decode_split(groups: list[tuple[str, int]], processes: int) -> int:
    """decode() over `processes` new processes, each taking every processes-th row group (a dataset with
    fewer row groups leaves some idle, where TrainingDataset's workers would split rows) -> images decoded."""
    with ProcessPoolExecutor(processes) as pool:
        return sum(pool.map(decode, [groups[k::processes] for k in range(processes)]))


def image_sizes(samples: list[dict]) -> list[tuple[int, int]]:
    """A DataLoader batch of samples -> their images' (width, height): a collate_fn that makes no tensors."""
    return [sample["image"].size for sample in samples]


def variants(out: str, shuffle_buffer: int) -> dict:
    """{name: read(run) -> images decoded}: the baseline in one process, in WORKERS processes, and the
    DataLoader in file order and shuffled (a new epoch each run)."""
    from torch.utils.data import DataLoader

    from pipelines import TrainingDataset

    groups = row_groups(out)
    ordered = TrainingDataset(out)
    shuffled = TrainingDataset(out, shuffle_seed=0, shuffle_buffer=shuffle_buffer)

    def loader(dataset, run: int) -> int:
        dataset.set_epoch(run)
        batches = DataLoader(dataset, batch_size=BATCH, num_workers=WORKERS, collate_fn=image_sizes)
        return sum(len(sizes) for sizes in batches)

    return {ONE: lambda run: decode(groups), SPLIT: lambda run: decode_split(groups, WORKERS),
            f"DataLoader(TrainingDataset), {WORKERS} workers": lambda run: loader(ordered, run),
            f"DataLoader(TrainingDataset(shuffle_seed=0, shuffle_buffer={shuffle_buffer:,})), {WORKERS} workers":
                lambda run: loader(shuffled, run)}


def verdict(results: dict[str, dict], target: float) -> str:
    """Which DataLoader variants reach `target` times SPLIT's images/s (median wall time)."""
    base = statistics.median(results[SPLIT]["walls"])
    ratios = {name: base / statistics.median(r["walls"]) for name, r in results.items() if name not in (ONE, SPLIT)}
    return "; ".join(f"{name}: {ratio:.2f}x {SPLIT}, target {target}x {'met' if ratio >= target else 'missed'}"
                     for name, ratio in ratios.items())
