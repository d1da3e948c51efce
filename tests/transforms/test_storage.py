"""fsspec helpers on a local folder and on fsspec's in-memory filesystem: join_url, write_bytes, Arrow files."""
import uuid

import fsspec
import pyarrow as pa
import pytest

from transforms.storage import filesystem, join_url, read_arrow, read_manifest, write_arrow, write_bytes


@pytest.fixture(params=["local", "memory"])
def base(request, tmp_path) -> str:
    """A folder URL that does not exist yet: under tmp_path, or a fresh memory:// folder (removed after)."""
    if request.param == "local":
        yield str(tmp_path / "root")
        return
    url = f"memory://storage-test-{uuid.uuid4().hex}"
    yield url
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.mark.parametrize("base_url, parts, expected", [
    ("gs://bucket/out", ("a", "b.parquet"), "gs://bucket/out/a/b.parquet"),
    ("gs://bucket/out/", ("a",), "gs://bucket/out/a"),
    ("/tmp/out///", ("spill", "b00001", "x.arrow"), "/tmp/out/spill/b00001/x.arrow"),
    ("memory://m", (), "memory://m"),
])
def test_join_url(base_url, parts, expected):
    assert join_url(base_url, *parts) == expected


def test_write_bytes_creates_parent_folders_and_returns_the_size(base):
    url = join_url(base, "deep", "er", "file.bin")
    assert write_bytes(b"\x00abc\xff", url) == 5
    with fsspec.open(url, "rb") as handle:
        assert handle.read() == b"\x00abc\xff"


def test_write_bytes_replaces_an_existing_file(base):
    url = join_url(base, "file.bin")
    write_bytes(b"first, longer", url)
    write_bytes(b"second", url)
    with fsspec.open(url, "rb") as handle:
        assert handle.read() == b"second"


def test_an_exclusive_write_never_replaces_a_file(base):
    url = join_url(base, "manifest.json")
    write_bytes(b"first", url, exclusive=True)
    with pytest.raises(FileExistsError):
        write_bytes(b"second", url, exclusive=True)
    with fsspec.open(url, "rb") as handle:
        assert handle.read() == b"first"


def test_read_manifest_is_none_without_one_and_the_json_with_one(base):
    assert read_manifest(base) is None
    write_bytes(b'{"run_id": "R1"}', join_url(base, "manifest.json"))
    assert read_manifest(base) == {"run_id": "R1"}


def test_write_arrow_then_read_arrow_round_trip(base):
    table = pa.table({
        "text": pa.array(["a", None, "ünïcode"], pa.string()),
        "chunks": pa.array([[1, 2], None, []], pa.list_(pa.int64())),
        "_key": pa.array([1, 2**64 - 1, 0], pa.uint64()),
    })
    url = join_url(base, "spill", "b00003", "part.arrow")
    write_arrow(table, url)
    read = read_arrow(url)
    assert read.schema == table.schema
    assert read.equals(table)


def test_write_arrow_file_is_arrow_ipc_lz4_compressed_on_object_stores_only(base):
    table = pa.table({"text": ["same text " * 50] * 200})
    url = join_url(base, "spill.arrow")
    write_arrow(table, url)
    fs, path = filesystem(url)
    with fs.open(path, "rb") as handle:
        data = handle.read()
    assert data.startswith(b"ARROW1")
    if base.startswith("memory://"):
        assert len(data) < table.nbytes / 10  # compressed: the repeated text shrinks
    else:
        assert len(data) > table.nbytes  # a local file is left as it is: compressing costs more than it saves


def test_filesystem_gives_the_path_within_the_filesystem(tmp_path):
    fs, path = filesystem(str(tmp_path / "x.csv"))
    assert fs.protocol[0] in ("file", "local") and path.endswith("/x.csv")
    fs, path = filesystem("memory://bucket/x.csv")
    assert "memory" in fs.protocol and path.endswith("bucket/x.csv")
