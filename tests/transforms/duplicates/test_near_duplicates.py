"""transforms.duplicates.near_duplicates, its plain parts: band rows (a row per piece and partition, with
its row among the bucket's pieces), band files (a partition's rows in bucket order, however the buckets were
gathered into files; signatures once per piece, read back only where asked), the verified pairs read back
from them, and the graph's partitions. The stage itself runs end to
end in tests/end_to_end/test_duplicates.py."""
import numpy as np
import pyarrow as pa
import pytest

from schemas.options import DuplicateOptions
from transforms.duplicates import near_duplicates
from transforms.duplicates.near_duplicates import (BandFile, band_rows, component_partitions, piece_signatures,
                                                   read_bands, read_signatures, verified_pairs)

PARTITIONS = 3


def pieces(bucket: int, count: int = 40) -> tuple:
    """Texts of 30 words of their own, the even ones the same in every bucket -> piece_signatures' (nodes,
    band keys, signatures); node i << 8 | bucket."""
    texts = [" ".join(f"{'' if i % 2 == 0 else bucket}w{i}x{j}" for j in range(30)) for i in range(count)]
    nodes = (np.arange(count, dtype=np.uint64) << np.uint64(8)) | np.uint64(bucket)
    return piece_signatures("text", nodes, pa.array(texts), DuplicateOptions(near=True))


def test_band_rows_hold_each_piece_once_per_partition_with_its_keys_there():
    nodes, keys, _ = pieces(0)
    found = {}
    for partition, batch in band_rows(nodes, keys, PARTITIONS):
        rows = batch.to_pydict()
        assert len(set(rows["node"])) == len(rows["node"])
        for node, piece, own in zip(rows["node"], rows["piece"], rows["keys"]):
            assert all(key % PARTITIONS == partition for key in own)
            assert node == nodes[piece]
            found.setdefault(node, []).extend(own)
    assert {node: sorted(own) for node, own in found.items()} == \
        {int(node): sorted(own.tolist()) for node, own in zip(nodes, keys)}


def written(tmp_path, groups: list, signed: dict) -> list:
    """Buckets' piece_signatures gathered into one BandFile per group of buckets -> the files' paths."""
    paths = []
    for group in groups:
        band = BandFile(str(tmp_path), "text")
        for bucket in group:
            nodes, keys, signatures = signed[bucket]
            for partition, batch in band_rows(nodes, keys, PARTITIONS):
                band.add(partition, bucket, batch)
            band.add_signatures(bucket, signatures)
        band.write()
        paths.append(band.path)
    return paths


def test_a_partition_reads_the_same_rows_however_buckets_were_gathered(tmp_path):
    signed = {bucket: pieces(bucket) for bucket in (0, 1, 2)}
    parts = {bucket: list(band_rows(signed[bucket][0], signed[bucket][1], PARTITIONS)) for bucket in (0, 1, 2)}
    one_file, three_files = written(tmp_path, [[2, 0, 1]], signed), written(tmp_path, [[1], [2], [0]], signed)
    for partition in range(PARTITIONS):
        expected = [(bucket, batch) for bucket in (0, 1, 2) for number, batch in parts[bucket] if number == partition]
        table = pa.Table.from_batches([batch for _, batch in expected])
        buckets = [bucket for bucket, batch in expected for _ in range(batch.num_rows)]
        for paths in (one_file, sorted(three_files)):
            rows = read_bands(paths, partition)
            assert rows.select(["node", "piece", "keys"]).equals(table)
            assert rows.column("bucket").to_pylist() == buckets


def test_signatures_are_read_back_for_the_rows_asked_across_files_buckets_and_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(near_duplicates, "SIGNATURE_ROWS", 7)  # 40 pieces a bucket: 6 chunks
    signed = {bucket: pieces(bucket) for bucket in (0, 1, 2)}
    paths = sorted(written(tmp_path, [[1], [2, 0]], signed))
    rows = read_bands(paths, 1)
    wanted = np.array([0, 3, 8, 9, rows.num_rows - 1, *range(10, rows.num_rows, 5)])
    signatures = read_signatures(paths, rows, wanted)
    buckets, piece = rows.column("bucket").to_numpy()[wanted], rows.column("piece").to_numpy()[wanted]
    expected = np.stack([signed[bucket][2][p] for bucket, p in zip(buckets.tolist(), piece.tolist())])
    assert len(set(buckets.tolist())) == 3 and len(set((piece // 7).tolist())) > 3
    np.testing.assert_array_equal(signatures, expected)


def test_a_band_file_says_which_partitions_are_new_to_it(tmp_path):
    nodes, keys, _ = pieces(0)
    (first, batch), *_ = band_rows(nodes, keys, PARTITIONS)
    band = BandFile(str(tmp_path), "text")
    assert band.add(first, 0, batch) and not band.add(first, 1, batch) and band.nbytes == 2 * batch.nbytes


def test_copies_in_two_buckets_are_paired_through_their_band_files(tmp_path):
    """The even texts are in both buckets, the odd ones in one."""
    paths = written(tmp_path, [[0], [1]], {bucket: pieces(bucket) for bucket in (0, 1)})
    found, asked = set(), []
    for partition in range(PARTITIONS):
        rows = read_bands(paths, partition)

        def signatures_of(wanted):
            asked.append(len(wanted))
            return read_signatures(paths, rows, wanted)

        a, b, similarity = verified_pairs("text", rows, signatures_of, DuplicateOptions(near=True))
        assert (similarity >= 0.9).all()
        found |= set(zip(a.tolist(), b.tolist()))
    assert found == {(i << 8, (i << 8) | 1) for i in range(0, 40, 2)}
    assert sum(asked) <= 3 * 40  # the 40 even pieces, in each partition at most: never the 40 odd ones


@pytest.mark.parametrize("buckets, partitions", [(1, 1), (2, 2), (4, 2), (5, 3), (77, 9), (7700, 88)])
def test_the_graph_has_about_the_square_root_of_the_buckets_as_partitions(buckets, partitions):
    assert component_partitions(buckets) == partitions
