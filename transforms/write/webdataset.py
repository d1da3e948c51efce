"""The WebDataset format: `webdataset/*.tar` shards, one sample per document, its files named KEY.EXTENSION
with KEY the document id (ids hold no dot, so every reader splits a name into key and field the same way):

    KEY.txt              the text
    KEY.jpg/.png/.webp   the image (`blob`), the extension from its mime_type
    KEY.npy              the point cloud, a float32 (N, 3) array in numpy's .npy format
    KEY.json             id, label, score, modality, uri, source_file, source_row, split

A two-chunk document (CLIP pairs, scores) holds its chunks' content instead: CLIP's text and image as
KEY.txt and KEY.jpg (what CLIP trainers read); when two chunks hold the same kind (the two sentences of a
scores document), chunk J's files are KEY.J.txt. A sample's files are written in name order, every header
with mtime, uid and gid 0 and no owner name, so the same documents always give the same bytes.
"""
import io
import json
import tarfile
from typing import Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.write.shard_writer import ShardWriter

# Image mime types (Pillow's) whose usual extension is not their subtype (less an `x-`).
EXTENSIONS = {"image/jpeg": "jpg", "image/x-icon": "ico", "image/vnd.adobe.photoshop": "psd",
              "image/x-portable-anymap": "pnm"}
METADATA = ("id", "label", "score", "modality", "uri", "source_file", "source_row", "split")


def image_extension(mime_type: Optional[str]) -> str:
    """A blob's mime type -> the file extension readers decode it by ('image/jpeg' -> 'jpg'); 'bin' unknown."""
    if not mime_type or "/" not in mime_type:
        return "bin"
    return EXTENSIONS.get(mime_type, mime_type.split("/", 1)[1].removeprefix("x-"))


def _npy(points: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, points, allow_pickle=False)
    return buffer.getvalue()


def contents(columns: pa.StructArray) -> list[list[tuple[str, bytes]]]:
    """Documents or chunks (a struct array with text, blob, mime_type and point_cloud) -> for each, its
    content files [(extension, bytes)]: text, image, point cloud, those it has."""
    texts, blobs = columns.field("text").to_pylist(), columns.field("blob").to_pylist()
    mime_types, clouds = columns.field("mime_type").to_pylist(), columns.field("point_cloud")
    sizes = pc.list_value_length(clouds).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    points = clouds.flatten().flatten().to_numpy(zero_copy_only=False).astype("<f4").reshape(-1, 3)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    has_cloud = clouds.is_valid().to_numpy(zero_copy_only=False)
    files = []
    for row, (text, blob, mime_type) in enumerate(zip(texts, blobs, mime_types)):
        found = []
        if text is not None:
            found.append(("txt", text.encode()))
        if blob is not None:
            found.append((image_extension(mime_type), blob))
        if has_cloud[row]:
            found.append(("npy", _npy(points[starts[row]:starts[row + 1]])))
        files.append(found)
    return files


def samples(batch: pa.RecordBatch) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """Documents -> (key, [(field, bytes)] in field order) per document: its content, or its chunks', and
    its json."""
    columns = pa.StructArray.from_arrays(batch.columns, names=batch.schema.names)
    own = contents(columns)
    chunks = batch.column("chunks")
    chunk_files = contents(chunks.flatten())
    bounds = np.concatenate([[0], np.cumsum(pc.list_value_length(chunks).fill_null(0).to_numpy(zero_copy_only=False))])
    metadata = zip(*(batch.column(name).to_pylist() for name in METADATA))
    result = []
    for row, values in enumerate(metadata):
        pieces = [(j, extension, data) for j, files in enumerate(chunk_files[bounds[row]:bounds[row + 1]])
                  for extension, data in files]
        extensions = [extension for extension, _ in own[row]] + [extension for _, extension, _ in pieces]
        numbered = len(set(extensions)) < len(extensions)
        files = own[row] + [(f"{j}.{extension}" if numbered else extension, data) for j, extension, data in pieces]
        files.append(("json", json.dumps(dict(zip(METADATA, values)), ensure_ascii=False).encode()))
        result.append((values[0], sorted(files, key=lambda file: file[0])))
    return result


class WebDatasetShards(ShardWriter):
    """Documents as a WebDataset tar shard (uncompressed, deterministic headers), streamed batch by batch."""

    name = "webdataset"
    folder = "webdataset"
    suffix = ".tar"

    def __init__(self, url: str):
        super().__init__(url)
        self._handle = self._open()
        self._tar = tarfile.open(fileobj=self._handle, mode="w|", format=tarfile.USTAR_FORMAT)

    def _write(self, batch: Union[pa.RecordBatch, pa.Table]) -> None:
        for part in (batch.to_batches() if isinstance(batch, pa.Table) else [batch]):
            for key, files in samples(part):
                for field, data in files:
                    self._add(f"{key}.{field}", data)

    def _add(self, name: str, data: bytes) -> None:
        header = tarfile.TarInfo(name)
        header.size, header.mtime, header.mode = len(data), 0, 0o644
        header.uid = header.gid = 0
        header.uname = header.gname = ""
        self._tar.addfile(header, io.BytesIO(data))

    def _close(self) -> int:
        self._tar.close()
        self._handle.close()
        return self._fs.size(self._path)
