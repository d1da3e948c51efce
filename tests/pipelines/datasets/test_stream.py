"""stream() and iter_docs() on datasets the prepare job writes: each reader's share, orders, resumption,
splits, older datasets, DocList batches, and memory on a million rows.

The quora example (2,000 labelled questions) is prepared twice: with --shard-rows 90 and --split, 23 shards
of one row group each (more row groups than the 6 readers of 2 ranks x 3 workers), and with --shard-rows 700,
3 row groups (fewer: every reader takes a slice of each)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipelines
from bench.make_csv import write_csv
from pipelines.cli import main
from pipelines.datasets.load import UnknownSplit
from pipelines.datasets.shuffle_buffer import ShuffleBuffer
from pipelines.datasets.stream import DatasetStream, _Pool
from schemas.documents import DOCUMENT_SCHEMA

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RANKS, WORKERS = 2, 3


def prepare(out: Path, *args: str) -> Path:
    assert main(["prepare", "--input", str(EXAMPLES / "quora-labeled.csv"), "--is-labeled", "--output", str(out),
                 *args]) == 0
    return out


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """Split into train and test, 23 row groups of at most 90 rows."""
    return prepare(tmp_path_factory.mktemp("stream") / "many", "--shard-rows", "90", "--split", "train=0.8,test=0.2")


@pytest.fixture(scope="module")
def few(tmp_path_factory) -> Path:
    """3 row groups (of about 667 rows: the shards are balanced), Parquet only."""
    return prepare(tmp_path_factory.mktemp("stream") / "few", "--shard-rows", "700", "--format", "parquet")


def row_groups(out: Path) -> list[list[str]]:
    """The ids of each row group of the dataset's shards, in the manifest's order."""
    groups = []
    for shard in json.loads((out / "manifest.json").read_text())["shards"]["documents"]:
        file = pq.ParquetFile(out / shard["path"])
        groups += [file.read_row_group(i, columns=["id"]).column("id").to_pylist() for i in range(file.num_row_groups)]
    return groups


def ids(batches) -> list[str]:
    return [i for batch in batches for i in batch.column("id").to_pylist()]


def reader(out: Path, rank: int, worker: int, **options) -> DatasetStream:
    return pipelines.stream(str(out), columns=["id"], rank=rank, world_size=RANKS, worker=worker,
                            num_workers=WORKERS, **options)


def test_more_row_groups_than_readers_are_dealt_out_whole(many):
    """Reader r (= rank * 3 + worker) of 6 reads row groups r, r + 6, ... whole, in file order; together
    the readers read every document once, and len() is what each yields."""
    groups = row_groups(many)
    assert len(groups) > RANKS * WORKERS
    seen = []
    for rank in range(RANKS):
        for worker in range(WORKERS):
            stream = reader(many, rank, worker, batch_size=64)
            got = ids(stream)
            assert got == [i for group in groups[rank * WORKERS + worker::RANKS * WORKERS] for i in group]
            assert len(stream) == len(got)
            seen += got
    assert sorted(seen) == sorted(pipelines.load_table(str(many), columns=["id"]).column("id").to_pylist())


def test_fewer_row_groups_than_readers_are_sliced_evenly(few):
    groups = row_groups(few)
    assert len(groups) == 3
    readers, seen, sizes = RANKS * WORKERS, [], []
    for rank in range(RANKS):
        for worker in range(WORKERS):
            r = rank * WORKERS + worker
            got = ids(reader(few, rank, worker, batch_size=50))
            assert got == [i for g in groups for i in g[r * len(g) // readers:(r + 1) * len(g) // readers]]
            seen, sizes = seen + got, sizes + [len(got)]
    assert sorted(seen) == sorted(i for g in groups for i in g)
    assert max(sizes) - min(sizes) <= len(groups)


@pytest.mark.parametrize("dataset", ["many", "few"])
def test_shuffled_readers_still_read_every_document_once(dataset, request):
    out = request.getfixturevalue(dataset)
    everything = sorted(i for g in row_groups(out) for i in g)
    for epoch in (0, 1):
        seen = []
        for rank in range(RANKS):
            for worker in range(WORKERS):
                stream = reader(out, rank, worker, batch_size=32, shuffle_seed=7, shuffle_buffer=100)
                stream.set_epoch(epoch)
                seen += ids(stream)
        assert sorted(seen) == everything


def test_batches_hold_at_most_batch_size_rows_across_row_groups(many):
    """Batches are filled across row groups: all are full but the epoch's last."""
    sizes = [b.num_rows for b in pipelines.stream(str(many), columns=["id"], batch_size=128)]
    assert sizes[:-1] == [128] * (len(sizes) - 1) and 0 < sizes[-1] <= 128 and sum(sizes) == 2000


def test_the_same_seed_gives_the_same_order_and_another_seed_another(many):
    def order(seed, epoch=0):
        stream = pipelines.stream(str(many), columns=["id"], batch_size=100, shuffle_seed=seed, shuffle_buffer=300)
        stream.set_epoch(epoch)
        return ids(stream)

    file_order = ids(pipelines.stream(str(many), columns=["id"]))
    first = order(1)
    assert first == order(1) and sorted(first) == sorted(file_order)
    assert len({tuple(first), tuple(order(2)), tuple(order(1, epoch=1)), tuple(file_order)}) == 4
    assert order(1, epoch=1) == order(1, epoch=1)


def test_iterating_again_repeats_the_epoch_until_set_epoch(many):
    stream = pipelines.stream(str(many), columns=["id"], batch_size=100, shuffle_seed=3)
    first = ids(stream)
    assert ids(stream) == first
    stream.set_epoch(1)
    assert ids(stream) != first


def resumed(out: Path, batches: int, **options) -> tuple[list, list]:
    """The ids of a stream's first `batches` batches, and of what a new stream yields after load_state_dict
    of its state (through JSON)."""
    stream = pipelines.stream(str(out), **options)
    iterator = iter(stream)
    head = [next(iterator).column("id").to_pylist() for _ in range(batches)]
    state = json.loads(json.dumps(stream.state_dict()))
    again = pipelines.stream(str(out), **options)
    again.load_state_dict(state)
    return head, [batch.column("id").to_pylist() for batch in again]


@pytest.mark.parametrize("dataset", ["many", "few"])
@pytest.mark.parametrize("seed", [None, 5])
def test_a_resumed_stream_yields_exactly_the_rest(dataset, seed, request):
    """After k batches, at every k (in the buffer's filling, mid row group, across row groups, while the
    buffer drains, at the end), same batches of the same rows in the same order."""
    out = request.getfixturevalue(dataset)
    options = dict(columns=["id"], batch_size=37, shuffle_seed=seed, shuffle_buffer=150, rank=1, world_size=2)
    whole = [batch.column("id").to_pylist() for batch in pipelines.stream(str(out), **options)]
    for k in range(len(whole) + 1):
        head, rest = resumed(out, k, **options)
        assert head + rest == whole, k


def test_a_resumed_epoch_keeps_its_epoch(many):
    options = dict(columns=["id"], batch_size=100, shuffle_seed=5)
    stream = pipelines.stream(str(many), **options)
    stream.set_epoch(3)
    whole = ids(stream)
    iterator = iter(stream)
    head = ids([next(iterator) for _ in range(4)])
    again = pipelines.stream(str(many), **options)
    again.load_state_dict(stream.state_dict())
    assert again.epoch == 3 and head + ids(again) == whole


def test_dict_rows_resume_mid_batch(few):
    options = dict(columns=["id", "label"], rows=True, batch_size=64, shuffle_seed=2, shuffle_buffer=200)
    whole = list(pipelines.stream(str(few), **options))
    assert len(whole) == 2000 and set(whole[0]) == {"id", "label"}
    stream = pipelines.stream(str(few), **options)
    iterator = iter(stream)
    head = [next(iterator) for _ in range(100)]
    again = pipelines.stream(str(few), **options)
    again.load_state_dict(json.loads(json.dumps(stream.state_dict())))
    assert head + list(again) == whole


def test_the_state_is_small_and_names_rows_not_data(few):
    stream = pipelines.stream(str(few), batch_size=64, shuffle_seed=2, shuffle_buffer=200)
    iterator = iter(stream)
    for _ in range(5):
        next(iterator)
    state = stream.state_dict()  # the first piece's step: 320 of its rows yielded, begun with an empty buffer
    assert (state["epoch"], state["row_group"], state["rows"], state["skip"], state["buffer"]) == (0, 0, 320, 0, [])
    while state["row_group"] == 0:
        next(iterator)
        state = stream.state_dict()
    assert len(state["buffer"]) == 200 and all(len(c) == 2 for c in state["buffer"])
    assert len(json.dumps(state)) < 10_000


def test_a_state_of_another_stream_is_refused(few):
    state = pipelines.stream(str(few), shuffle_seed=1).state_dict()
    with pytest.raises(ValueError, match="seed"):
        pipelines.stream(str(few), shuffle_seed=2).load_state_dict(state)


def test_split_reads_one_split(many):
    test = pipelines.load_table(str(many), columns=["id", "split"], split="test")
    streamed = pa.Table.from_batches(list(pipelines.stream(str(many), split="test", columns=["id", "split"])))
    assert streamed.equals(test) and set(streamed.column("split").to_pylist()) == {"test"}
    assert len(pipelines.stream(str(many), split="train")) == 1600
    with pytest.raises(UnknownSplit):
        pipelines.stream(str(many), split="dev")


def test_all_columns_come_as_load_table_reads_them(many):
    streamed = pa.Table.from_batches(list(pipelines.stream(str(many), batch_size=500)))
    assert streamed.schema == DOCUMENT_SCHEMA and streamed.equals(pipelines.load_table(str(many)))


def test_columns_an_older_dataset_lacks_come_back_null(few, tmp_path):
    old = Path(shutil.copytree(few, tmp_path / "old"))
    for shard in (old / "documents").glob("*.parquet"):
        pq.write_table(pq.read_table(shard).drop_columns(["split", "duplicate_group"]), shard, row_group_size=700)
    batches = list(pipelines.stream(str(old), columns=["id", "split", "duplicate_group"], batch_size=256))
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["id", "split", "duplicate_group"] and table.num_rows == 2000
    assert table.column("split").null_count == table.column("duplicate_group").null_count == 2000
    assert pa.Table.from_batches(list(pipelines.stream(str(old)))).equals(pipelines.load_table(str(old)))


def test_an_fsspec_url_streams_as_the_local_path_does(few):
    """An in-memory copy (memory://) is read through fsspec as gs:// would be, with the same result."""
    memory = fsspec.filesystem("memory")
    memory.put(str(few), "memory://stream-test/few", recursive=True)
    try:
        options = dict(columns=["id", "text"], batch_size=128, shuffle_seed=1, shuffle_buffer=100, rank=1,
                       world_size=2)
        in_memory = ids(pipelines.stream("memory://stream-test/few", **options))
        assert in_memory == ids(pipelines.stream(str(few), **options))
    finally:
        memory.rm("memory://stream-test", recursive=True)


def test_iter_docs_gives_doclists_as_load_docs_reads_them(many):
    batches = list(pipelines.iter_docs(str(many), batch_size=300))
    assert [len(docs) for docs in batches] == [300] * 6 + [200]
    loaded = {doc.id: doc for doc in pipelines.load_docs(str(many))}
    streamed = [doc for docs in batches for doc in docs]
    assert [doc.id for doc in streamed] == ids(pipelines.stream(str(many), columns=["id"]))
    assert all(doc.text == loaded[doc.id].text and doc.tags == loaded[doc.id].tags
               and doc.split == loaded[doc.id].split for doc in streamed) and len(loaded) == len(streamed)


def test_iter_docs_divides_and_shuffles_like_stream(many):
    options = dict(shuffle_seed=4, rank=1, world_size=2, worker=1, num_workers=2)
    docs = [doc.id for batch in pipelines.iter_docs(str(many), split="train", batch_size=64, **options)
            for doc in batch]
    assert docs == ids(pipelines.stream(str(many), split="train", columns=["id"], batch_size=64, **options))


def test_the_buffer_swaps_as_one_row_at_a_time():
    """One vectorised swap: row i sends out the row in slot s_i and takes that slot, as a loop would."""
    for seed in range(20):
        capacity, incoming = 1 + seed, 3 * seed + 1
        buffer = ShuffleBuffer(capacity, np.random.default_rng(seed))
        buffer.hold(np.arange(capacity) + 1000, np.zeros((capacity, 2), np.int64))
        slots, held, expected = np.random.default_rng(seed).integers(0, capacity, incoming), list(buffer.keys), []
        for key, slot in zip(range(incoming), slots):
            expected.append(held[slot])
            held[slot] = key
        assert buffer.swap(np.arange(incoming), np.zeros((incoming, 2), np.int64)).tolist() == expected
        assert buffer.keys.tolist() == held



def test_a_pool_of_several_batches_takes_rows_as_one_table_would():
    """_Pool keeps the batches rows came in; any keys, few (a take per batch, put back in order) or many
    (the batches joined first), give the rows of one joined table, all-null columns included."""
    schema = pa.schema([("id", pa.string()), ("blob", pa.binary()), ("empty", pa.string())])
    batches = [pa.record_batch([[f"{b}-{i}" for i in range(n)], [bytes([b, i % 256]) * 3 for i in range(n)],
                                pa.nulls(n, pa.string())], schema=schema) for b, n in enumerate([5, 0, 40, 7, 130])]
    joined = pa.Table.from_batches(batches).combine_chunks()
    pool = _Pool(batches[:2]).extended(batches[2]).extended(batches[3]).extended(batches[4])
    rng = np.random.default_rng(0)
    for count in (0, 1, 9, 60, 150, 182):
        keys = rng.integers(0, joined.num_rows, count)
        assert pa.Table.from_batches([pool.take(keys)]).equals(joined.take(keys))

MILLION = 1_000_000
MEMORY_PROBE = """
import json, resource, sys
import pipelines
stream = pipelines.stream(sys.argv[1], shuffle_seed=0, shuffle_buffer=10_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = sum(batch.num_rows for batch in stream)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "growth_kib": after - before}))
"""


@pytest.fixture(scope="module")
def million(tmp_path_factory) -> Path:
    """10^6 generated labelled texts (bench.make_csv), prepared with --format parquet."""
    tmp = tmp_path_factory.mktemp("million")
    write_csv(str(tmp / "labeled.csv"), "labeled", MILLION)
    out = tmp / "out"
    assert main(["prepare", "--input", str(tmp / "labeled.csv"), "--output", str(out), "--layout", "labeled",
                 "--dialect", "excel", "--format", "parquet"]) == 0
    return out


def test_a_million_rows_stream_shuffled_in_bounded_memory(million):
    """Peak RSS of a fresh process grows by less than 300 MB while it streams every row through a buffer of
    10,000 (the dataset: 55 MB of Parquet, 16 row groups of up to 65,536 rows)."""
    probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(million)], capture_output=True, text=True,
                           check=True)
    result = json.loads(probe.stdout)
    assert result["rows"] == MILLION
    assert result["growth_kib"] < 300 * 1024, result
