"""transforms.split.parking: tables and their parts kept in the staging folder and read back, on a local
disk (uncompressed, memory-mapped) and on an object store (fsspec's memory filesystem stands in)."""
import fsspec
import pyarrow as pa
import pytest

from transforms.split.parking import park, park_parts, unpark, unpark_part


@pytest.fixture(params=["local", "memory"])
def folder(request, tmp_path):
    if request.param == "local":
        yield str(tmp_path)
        return
    yield f"memory://{tmp_path.name}"
    fsspec.filesystem("memory").rm(tmp_path.name, recursive=True)


def test_a_parked_table_reads_back_whole(folder):
    table = pa.Table.from_batches([pa.record_batch({"id": ["a", "b"], "n": [1, None]}),
                                   pa.record_batch({"id": ["c"], "n": [3]})])
    park(table, f"{folder}/split/b00001.arrow")  # the folder is made as needed
    assert unpark(f"{folder}/split/b00001.arrow").equals(table)


def test_each_part_reads_back_alone(folder):
    links = pa.record_batch({"node": pa.array([5, 6, 7, 8], pa.uint64()), "root": pa.array([1, 1, 2, 2], pa.uint64())})
    park_parts([(0, links.slice(0, 1)), (3, links.slice(1, 3))], f"{folder}/links.arrow")
    assert unpark_part(f"{folder}/links.arrow", 3).equals(links.slice(1, 3))
    assert unpark_part(f"{folder}/links.arrow", 0).equals(links.slice(0, 1))
