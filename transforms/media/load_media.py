"""Media stage: load the images and meshes that candidate documents point at.

Candidate batches are cut into small batches (`media_batch_rows`, tens of rows) and spread over the
workers; in each, the distinct URIs are fetched concurrently (fetch.fetch_all), images are verified and
described (images.decode_image: blob, mime_type, width, height) and meshes are sampled into point clouds
(meshes.point_cloud), one file at a time on a thread per core, each thread decoding in its own timed child
process (decode_sandbox). A document with any file that cannot be loaded, its own
or a chunk's, becomes a dead letter of stage `media` that names the URI and says why. Loaded documents
get their keys again, from their images' bytes (keyed_by_content).
"""
from __future__ import annotations  # keeps Beam from reading StageOutput annotations as element types

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa

from schemas.documents import KEY, RAW, DeadLetter
from transforms.document_keys import document_keys
from schemas.modalities import uri_extension
from schemas.options import MediaOptions
from transforms.coders import batch_bytes, bytes_batch
from transforms.media.decode_sandbox import decode_image, point_cloud
from transforms.media.errors import MediaError
from transforms.media.fetch import fetch_all
from transforms.media.images import DecodedImage
from transforms.stage import StageOutput, apply_step, count, step_outputs
from transforms.uris import is_remote, resolve

STAGE = "media"
SPREAD_KEYS = 1 << 20  # batches are grouped by their first key modulo this, to spread them over workers


def wanted(kind: str, uri: str, options: MediaOptions) -> bool:
    """Whether this run loads a media URI: --no-fetch-remote leaves remote ones as URIs, as Finetuner did."""
    if not options.fetch_remote and is_remote(uri):
        return False
    return (kind == "image" and options.convert_to_blob) or (kind == "mesh" and options.create_point_clouds)


def load_media(rows: list[dict], options: MediaOptions, media_root: Optional[str] = None,
               ) -> tuple[list[dict], list[DeadLetter], dict]:
    """Document dicts -> (documents with media fields filled, dead letters, counts).

    A document's media are its own uri (modality image or mesh) and its chunks' uris; relative uris are
    read from `media_root` (the run's common input folder). A dead letter's `raw` is the document's CSV
    row (its uri for documents from .docs files)."""
    refs = []  # (row index, chunk index or None, uri, kind); uri None: the document carries its blob
    for i, row in enumerate(rows):
        targets = [(None, row)] if row["chunks"] is None else list(enumerate(row["chunks"]))
        for c, target in targets:
            if target["modality"] == "image" and target["blob"] is not None and options.convert_to_blob:
                refs.append((i, c, None, "image"))  # already loaded (e.g. our own output): verify and describe
            elif target["modality"] == "mesh" and target["point_cloud"] is not None:
                continue  # already sampled
            elif target["uri"] and wanted(target["modality"], resolve(target["uri"], media_root), options):
                refs.append((i, c, target["uri"], target["modality"]))
    located = {uri: resolve(uri, media_root) for _, _, uri, _ in refs if uri}
    by_location = {f.uri: f for f in fetch_all(sorted(set(located.values())), options)}
    fetched = {uri: by_location[location] for uri, location in located.items()}
    loaded: dict[tuple, object] = {}
    images: dict[tuple, bytes] = {}  # (row, chunk) -> bytes to decode
    for i, c, uri, kind in refs:
        if uri is None:
            images[(i, c)] = (rows[i] if c is None else rows[i]["chunks"][c])["blob"]
        elif fetched[uri].error is not None:
            loaded[(i, c)] = fetched[uri].error
        elif kind == "image":
            images[(i, c)] = fetched[uri].data
    loaded.update(zip(images, _decoder_pool().map(lambda data: decode_image(data, options), images.values())))
    meshes = [(i, c, uri) for i, c, uri, kind in refs if kind == "mesh" and uri and fetched[uri].error is None]
    clouds = _decoder_pool().map(lambda uri: point_cloud(fetched[uri].data, uri_extension(uri), options),
                                 [uri for _, _, uri in meshes])
    for (i, c, _), cloud in zip(meshes, clouds):
        loaded[(i, c)] = cloud
    good, dead = [], []
    for i, row in enumerate(rows):
        errors = [(uri, loaded[(j, c)]) for j, c, uri, _ in refs if j == i and isinstance(loaded[(j, c)], MediaError)]
        if errors:
            uri, error = errors[0]
            uri = uri or "the document's blob"
            named = located.get(uri, uri)
            dead.append(DeadLetter(row["source_file"], row["source_row"], STAGE, error.reason_class,
                                   error.reason if named in error.reason else f"{named}: {error.reason}",
                                   row[RAW] or uri))
            continue
        row[RAW] = None  # needed only for dead letters: not carried through the shuffles that follow
        for j, c, _, _ in refs:
            if j == i:
                _fill(row if c is None else row["chunks"][c], loaded[(j, c)])
        good.append(row)
    fetched_bytes = sum(len(f.data) for f in by_location.values() if f.data is not None)
    remote = [f for f in by_location.values() if is_remote(f.uri) and (f.attempts or f.source == "cache")]  # tried
    counts = count(STAGE, dead=dead, documents_rejected=len(dead), media_files=len(by_location),
                   bytes_fetched=fetched_bytes, remote_files=len(remote),
                   remote_files_loaded=sum(f.error is None for f in remote),
                   cache_hits=sum(f.source == "cache" for f in remote),
                   cache_revalidated=sum(f.source == "revalidated" and f.error is None for f in remote))
    return good, dead, counts


@functools.lru_cache(maxsize=None)
def _decoder_pool() -> ThreadPoolExecutor:
    """One thread per core, kept for the worker's life: each decodes in its own child process (decode_sandbox),
    so the files of a batch decode on all cores while this process only waits."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="decode")


def _fill(target: dict, media) -> None:
    """A document or chunk dict, its DecodedImage or meshes.Cloud -> the dict with its media fields set."""
    if isinstance(media, DecodedImage):
        target.update(blob=media.blob, mime_type=media.mime_type, width=media.width, height=media.height)
    else:
        target.update(point_cloud=media.points, point_cloud_from=media.origin)


def cut(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    """A batch -> copies of at most `rows` rows each. Not slices: a slice keeps the whole batch's buffers
    (the all-null `chunks` column's children among them), and Arrow IPC writes them whole for every slice."""
    for start in range(0, batch.num_rows, rows):
        yield batch.take(pa.array(np.arange(start, min(start + rows, batch.num_rows))))


def keyed_bytes(batch: pa.RecordBatch) -> tuple[int, bytes]:
    """A media batch -> (its first key modulo SPREAD_KEYS, its Arrow IPC bytes) for the spreading shuffle.

    Bytes, not a RecordBatch: Beam's own (compiled) coders write a bytes element to the data channel in one
    go, while a Python coder lets the FnApiRunner's flusher thread (every second in multi_threading mode)
    send the first part of an element; the runner's GroupByKey decodes each message on its own, and the
    rest of a batch decodes as an element with tens of millions of windows (memory grows by hundreds of
    MB/s until the OOM killer)."""
    return int(batch.column(KEY)[0].as_py()) % SPREAD_KEYS, batch_bytes(batch)


def cloud_column(clouds: list) -> pa.Array:
    """(n_i, 3) float32 arrays or None per row -> a list<fixed_size_list<float32, 3>> column, built from
    the numpy buffers (no Python floats)."""
    lengths = np.array([0 if c is None else len(c) for c in clouds], dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    present = [c for c in clouds if c is not None]
    flat = np.concatenate(present).astype(np.float32).ravel() if present else np.zeros(0, np.float32)
    points = pa.FixedSizeListArray.from_arrays(pa.array(flat), 3)
    mask = pa.array([c is None for c in clouds])
    return pa.ListArray.from_arrays(offsets, points, mask=mask)


def to_batch(rows: list[dict], schema: pa.Schema) -> pa.RecordBatch:
    """Document dicts (point clouds as (n, 3) arrays) -> a RecordBatch of `schema`."""
    clouds = [row["point_cloud"] for row in rows]
    for row in rows:
        row["point_cloud"] = None
        for chunk in row["chunks"] or []:
            if isinstance(chunk.get("point_cloud"), np.ndarray):
                chunk["point_cloud"] = chunk["point_cloud"].tolist()
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    index = schema.get_field_index("point_cloud")
    return batch.set_column(index, schema.field(index), cloud_column(clouds).cast(schema.field(index).type))


def keyed_by_content(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Loaded candidates -> the same with their keys computed again: an image is now named by its bytes,
    so the same photo under two URIs is one document (transforms/document_keys.py)."""
    index = batch.schema.get_field_index(KEY)
    return batch.set_column(index, batch.schema.field(index), pa.array(document_keys(batch), type=pa.uint64()))


class _LoadMediaFn(beam.DoFn):
    def __init__(self, options: MediaOptions, media_root: Optional[str]):
        self._options, self._media_root = options, media_root

    def process(self, batch: pa.RecordBatch) -> Iterator:
        good, dead, counts = load_media(batch.to_pylist(), self._options, self._media_root)
        yield from step_outputs([keyed_by_content(to_batch(good, batch.schema))] if good else [], dead, counts)


class LoadMedia(beam.PTransform):
    """Stage: main = candidate RecordBatches -> main = the candidates whose media loaded, media filled in."""

    def __init__(self, options: MediaOptions, batch_rows: int = 32, media_root: Optional[str] = None):
        super().__init__()
        self._options, self._batch_rows, self._media_root = options, batch_rows, media_root

    def expand(self, flow: StageOutput) -> StageOutput:
        rows = self._batch_rows
        batches = (
            flow.main
            | "CutMediaBatches" >> beam.FlatMap(cut, rows).with_output_types(pa.RecordBatch)
            | "KeyByFirstDocument" >> beam.Map(keyed_bytes).with_output_types(tuple[int, bytes])
            | "SpreadMediaBatches" >> beam.GroupByKey()
            | "MediaBatches" >> beam.FlatMap(lambda keyed: map(bytes_batch, keyed[1])).with_output_types(pa.RecordBatch)
        )
        return apply_step(flow.advance(batches), "LoadMedia", _LoadMediaFn(self._options, self._media_root))
