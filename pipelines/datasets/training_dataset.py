"""A prepared dataset as a PyTorch `IterableDataset` of training samples, streamed (pipelines.stream).

    dataset = TrainingDataset(url, split="train", shuffle_seed=0, transform=to_tensors)
    loader = DataLoader(dataset, batch_size=64, num_workers=4)   # or torchdata's StatefulDataLoader
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for batch in loader: ...

A sample is a dict: `id`; `label` (labeled and query-document layouts) or `score` (scored pairs); and the
document's content under its modality's name: `text` (str), `image` (a PIL image, decoded in the data-loader
worker that yields it) or `points` (a float32 (N, 3) numpy array); a two-part document (a CLIP pair, a scored
pair) has `chunks`, the two contents in order. `transform(sample)`, when given, runs in the worker too.

Each data-loader worker of each rank streams its own share (rank and world size from torch.distributed when
it is initialised as the dataset is made, worker from get_worker_info()), so every document is yielded once
per epoch across the job. `state_dict()` / `load_state_dict()` follow torchdata's stateful-dataloader
protocol: StatefulDataLoader takes each worker's state and gives it back on resume, and the resumed loader
yields exactly the rest of the epoch.
"""
from __future__ import annotations

import io
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

try:
    import torch.distributed
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as error:  # torch is an optional extra
    raise ImportError("TrainingDataset needs PyTorch: pip install -e '.[torch]'") from error

from pipelines.datasets.load import load_manifest
from pipelines.datasets.stream import DatasetStream, stream

BATCH_ROWS = 256  # rows read and converted at a time; samples are still yielded (and resumed) one by one
IMAGE_BLOCKS = 64  # freed image memory blocks Pillow keeps for reuse in a data-loader worker


class TrainingDataset(IterableDataset):
    """The dataset at `url` (or one split) -> an IterableDataset of sample dicts (see the module's doc).

    shuffle_seed / shuffle_buffer: as pipelines.stream (None: file order); call set_epoch before each epoch.
    rank / world_size: this process among the training processes (default: torch.distributed's when it is
    initialised, else 0 of 1). transform: a function of a sample, run in the data-loader worker."""

    def __init__(self, url: str, split: Optional[str] = None, transform: Optional[Callable[[dict], Any]] = None,
                 shuffle_seed: Optional[int] = None, shuffle_buffer: int = 10_000, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if distributed else 0)
        self.world_size = world_size if world_size is not None else (
            torch.distributed.get_world_size() if distributed else 1)
        self.url, self.split, self.transform, self.epoch = url, split, transform, 0
        self._shuffle = {"shuffle_seed": shuffle_seed, "shuffle_buffer": shuffle_buffer}
        manifest = load_manifest(url)
        self._fields = _sample_fields(manifest)
        self._columns = _columns_read(self._fields, manifest["modalities"])
        self._resume: Optional[dict] = None  # a state given to load_state_dict, for the next iteration
        self._position: Optional[dict] = None  # where the current iteration stands

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration yields (its order, when shuffled), from its beginning. With a
        DataLoader's workers, call it before the loader's iteration starts (workers copy the dataset then)."""
        self.epoch, self._resume, self._position = epoch, None, None

    def state_dict(self) -> dict:
        """Where this worker's iteration stands: {epoch, stream (pipelines.stream's state before the current
        batch of rows), rows (of that batch already yielded)}; before any iteration, the state to start from."""
        if self._position is not None:
            return dict(self._position)
        return dict(self._resume) if self._resume is not None else {"epoch": self.epoch, "stream": None, "rows": 0}

    def load_state_dict(self, state: dict) -> None:
        """Resume from a state_dict() of the same worker of the same dataset and settings: the next
        iteration yields exactly the samples the saved one had still to yield."""
        self.epoch, self._resume, self._position = state["epoch"], dict(state), None

    def __iter__(self) -> Iterator:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None and "blob" in self._columns:
            _reuse_image_memory()
        rows = stream(self.url, self.split, self._columns, BATCH_ROWS, rank=self.rank, world_size=self.world_size,
                      worker=worker, num_workers=workers, **self._shuffle)
        start, self._resume = self._resume or {"epoch": self.epoch, "stream": None, "rows": 0}, None
        if start["stream"] is not None:
            rows.load_state_dict(start["stream"])
        else:
            rows.set_epoch(self.epoch)
        return self._samples(rows, start["rows"])

    def _samples(self, rows: DatasetStream, skip: int) -> Iterator:
        """The stream's rows as samples (transformed), from `skip` rows into its first batch; keeps
        _position current."""
        batches = iter(rows)
        while True:
            before = rows.state_dict()
            self._position = {"epoch": self.epoch, "stream": before, "rows": skip}
            batch = next(batches, None)
            if batch is None:
                return
            for n, sample in enumerate(_batch_samples(batch.slice(skip), self._fields), skip + 1):
                self._position = {"epoch": self.epoch, "stream": before, "rows": n}
                yield sample if self.transform is None else self.transform(sample)
            skip = 0


def _sample_fields(manifest: dict) -> tuple[str, ...]:
    """The fields besides `id` and the content that every sample of the dataset has: label or score."""
    if manifest["layout"] == "scores":
        return ("score",)
    if manifest["layout"] == "pairs" and manifest.get("clip"):
        return ()
    return ("label",)


def _columns_read(fields: tuple[str, ...], modalities: list[str]) -> list[str]:
    """The document columns samples are made of (only the media columns the dataset's modalities use)."""
    columns = ["id", *fields, "modality", "text", "chunks"]
    if "image" in modalities:
        columns.append("blob")
    if "mesh" in modalities:
        columns.append("point_cloud")
    return columns


def _batch_samples(batch: pa.RecordBatch, fields: tuple[str, ...]) -> Iterator[dict]:
    """RecordBatch rows -> sample dicts, one at a time (an image is decoded when its sample is made)."""
    columns = {name: batch.column(name) for name in batch.schema.names}
    plain = {name: columns[name].to_pylist() for name in ("id", *fields, "modality", "text")}
    clouds = _clouds(columns["point_cloud"]) if "point_cloud" in columns else None
    blobs = columns.get("blob")
    chunks = columns["chunks"]
    for i in range(batch.num_rows):
        sample = {name: plain[name][i] for name in ("id", *fields)}
        modality = plain["modality"][i]
        if modality == "text":
            sample["text"] = plain["text"][i]
        elif modality == "image":
            sample["image"] = _image(blobs[i].as_py())
        elif modality == "mesh":
            sample["points"] = clouds[i]
        else:
            sample["chunks"] = [_chunk_content(chunk) for chunk in chunks[i].as_py()]
        yield sample


def _clouds(column: pa.Array) -> list[Optional[np.ndarray]]:
    """A point_cloud column -> a float32 (N, 3) array per row (None where null), views of one flat array."""
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    flat = np.array(pc.list_flatten(pc.list_flatten(column)), np.float32).reshape(-1, 3)  # writable, for torch
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[starts[i]:starts[i + 1]] if column[i].is_valid else None for i in range(len(column))]


def _reuse_image_memory() -> None:
    """In a data-loader worker (a process of its own): let Pillow keep freed image blocks for the next images
    (its default keeps none, so every image's memory went back to the system and was faulted in again: most
    of a worker's system time when images are decoded batch after batch)."""
    if Image.core.get_blocks_max() < IMAGE_BLOCKS:
        Image.core.set_blocks_max(IMAGE_BLOCKS)


def _image(blob: bytes) -> Image.Image:
    """Encoded image bytes -> the decoded PIL image."""
    image = Image.open(io.BytesIO(blob))
    image.load()
    return image


def _chunk_content(chunk: dict):
    """One chunk of a two-part document -> its content: text, a decoded image or a float32 (N, 3) array."""
    if chunk["modality"] == "image":
        return _image(chunk["blob"])
    if chunk["modality"] == "mesh":
        return np.asarray(chunk["point_cloud"], np.float32).reshape(-1, 3)
    return chunk["text"]
