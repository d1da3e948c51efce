"""transforms.duplicates.near_duplicates, its plain parts: band rows (a row per piece and partition, its
signature once), band files (a partition's rows in bucket order, however the buckets were gathered into
files), the verified pairs read back from them, and the graph's partitions. The stage itself runs end to
end in tests/end_to_end/test_duplicates.py."""
import numpy as np
import pyarrow as pa
import pytest

from schemas.options import DuplicateOptions
from transforms.duplicates.near_duplicates import (BandFile, band_rows, component_partitions, piece_signatures,
                                                   read_bands, verified_pairs)

PARTITIONS = 3


def pieces(bucket: int, count: int = 40) -> tuple:
    """Texts of 30 words of their own, the even ones the same in every bucket -> piece_signatures' (nodes,
    band keys, signatures); node i << 8 | bucket."""
    texts = [" ".join(f"{'' if i % 2 == 0 else bucket}w{i}x{j}" for j in range(30)) for i in range(count)]
    nodes = (np.arange(count, dtype=np.uint64) << np.uint64(8)) | np.uint64(bucket)
    return piece_signatures("text", nodes, pa.array(texts), DuplicateOptions(near=True))


def test_band_rows_hold_each_piece_once_per_partition_with_its_keys_there():
    nodes, keys, signatures = pieces(0)
    found = {}
    for partition, batch in band_rows(nodes, keys, signatures, PARTITIONS):
        rows = batch.to_pydict()
        assert len(set(rows["node"])) == len(rows["node"])
        for node, signature, own in zip(rows["node"], rows["signature"], rows["keys"]):
            assert all(key % PARTITIONS == partition for key in own)
            assert signature == signatures[list(nodes).index(node)].tobytes()
            found.setdefault(node, []).extend(own)
    assert {node: sorted(own) for node, own in found.items()} == \
        {int(node): sorted(own.tolist()) for node, own in zip(nodes, keys)}


def test_a_partition_reads_the_same_rows_however_buckets_were_gathered(tmp_path):
    parts = {bucket: list(band_rows(*pieces(bucket), PARTITIONS)) for bucket in (0, 1, 2)}

    def written(groups: list) -> list:
        paths = []
        for group in groups:
            band = BandFile(str(tmp_path), "text")
            for bucket in group:
                for partition, batch in parts[bucket]:
                    band.add(partition, bucket, batch)
            band.write()
            paths.append(band.path)
        return paths

    one_file, three_files = written([[2, 0, 1]]), written([[1], [2], [0]])
    for partition in range(PARTITIONS):
        expected = pa.Table.from_batches([batch for bucket in (0, 1, 2)
                                          for number, batch in parts[bucket] if number == partition])
        assert read_bands(one_file, partition).equals(expected)
        assert read_bands(sorted(three_files), partition).equals(expected)


def test_a_band_file_says_which_partitions_are_new_to_it(tmp_path):
    (first, batch), *_ = band_rows(*pieces(0), PARTITIONS)
    band = BandFile(str(tmp_path), "text")
    assert band.add(first, 0, batch) and not band.add(first, 1, batch) and band.nbytes == 2 * batch.nbytes


def test_copies_in_two_buckets_are_paired_through_their_band_files(tmp_path):
    """The even texts are in both buckets, the odd ones in one."""
    paths = []
    for bucket in (0, 1):
        band = BandFile(str(tmp_path), "text")
        for partition, batch in band_rows(*pieces(bucket), PARTITIONS):
            band.add(partition, bucket, batch)
        band.write()
        paths.append(band.path)
    found = set()
    for partition in range(PARTITIONS):
        a, b, similarity = verified_pairs("text", read_bands(paths, partition), DuplicateOptions(near=True))
        assert (similarity >= 0.9).all()
        found |= set(zip(a.tolist(), b.tolist()))
    assert found == {(i << 8, (i << 8) | 1) for i in range(0, 40, 2)}


@pytest.mark.parametrize("buckets, partitions", [(1, 1), (2, 2), (4, 2), (5, 3), (77, 9), (7700, 88)])
def test_the_graph_has_about_the_square_root_of_the_buckets_as_partitions(buckets, partitions):
    assert component_partitions(buckets) == partitions
