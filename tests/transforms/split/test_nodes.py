"""transforms.split.nodes: which documents a split must keep together, as graph edges."""
import numpy as np
import pyarrow as pa
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from schemas.documents import DOCUMENT_SCHEMA
from transforms.document_keys import document_keys, hex_ids
from transforms.hashing import column_hashes
from transforms.split.nodes import (content_nodes, document_graph, document_nodes, flat_content_nodes, keeps_labels_whole,
                                    label_hashes)


def table(*docs: dict) -> pa.Table:
    """Documents (dicts of some DOCUMENT_SCHEMA columns, modality text unless given; the rest null) with ids
    as the group stage gives them: their keys (transforms/document_keys.py) in hex."""
    rows = [{"id": "0" * 16, "modality": "text", **doc} for doc in docs]
    documents = pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)
    return documents.set_column(0, DOCUMENT_SCHEMA.field("id"), hex_ids(document_keys(documents)))


def groups(documents: pa.Table, keep_labels_whole: bool) -> list[set[int]]:
    """The documents (numbered from 1) that end up together: scipy's components over the edges, each
    document in its primary node's component."""
    primary, owner, v = document_graph(documents, keep_labels_whole)
    u = primary[owner]
    nodes, index = np.unique(np.concatenate([primary, u, v]), return_inverse=True)
    edges_at = index[len(primary):]
    half = len(u)
    graph = coo_matrix((np.ones(half), (edges_at[:half], edges_at[half:])), shape=(len(nodes), len(nodes)))
    _, component = connected_components(graph, directed=False)
    together = {}
    for number, c in enumerate(component[index[:len(primary)]], start=1):
        together.setdefault(int(c), set()).add(number)
    return sorted(together.values(), key=min)


def test_document_nodes_read_the_key_back_from_the_id():
    keys = np.array([0, 1, 2**64 - 1, 0x0123456789ABCDEF], dtype=np.uint64)
    ids = pa.array([s + suffix for s, suffix in zip(hex_ids(keys).to_pylist(), ["", "-1", "-12", ""])])
    assert (document_nodes(ids) == keys).all()
    assert (document_nodes(ids.slice(1)) == keys[1:]).all()
    with pytest.raises(ValueError, match="16 lowercase hex digits"):
        document_nodes(pa.array(["not-a-hex-id-at-all"]))


def test_a_documents_content_node_is_read_back_from_its_id():
    """Text with and without a label or a score, image bytes under two URIs, a URI not loaded, a point cloud:
    the node from the id is the hash of the content, which neither label nor score changes."""
    cloud = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    docs = table(dict(text="a", label="x"), dict(text="a"), dict(text="a", label="y", score=0.25),
                 dict(modality="image", uri="a.jpg", blob=b"photo", label="x"),
                 dict(modality="image", uri="b.jpg", blob=b"photo"), dict(modality="image", uri="c.jpg"),
                 dict(modality="mesh", uri="m.obj", point_cloud=cloud), dict(modality="mesh", uri="n.obj", point_cloud=cloud))
    nodes = flat_content_nodes(docs, label_hashes(docs.column("label")))
    hashed = content_nodes(*(docs.column(name) for name in ("modality", "text", "uri", "blob", "point_cloud")))
    assert nodes.tolist() == hashed.tolist()
    assert nodes[0] == nodes[1] == nodes[2] and nodes[3] == nodes[4] and nodes[6] == nodes[7]
    assert len(set(nodes.tolist())) == 4


def test_query_document_pairs_join_labels_that_share_a_document():
    """Query q1 with a, b; q2 with b (b is shared: q1 and q2 join); q3 with c alone."""
    docs = table(dict(text="q1", label="q1"), dict(text="a", label="q1"), dict(text="b", label="q1"),
                 dict(text="q2", label="q2"), dict(text="b", label="q2"),
                 dict(text="q3", label="q3"), dict(text="c", label="q3"))
    assert groups(docs, keep_labels_whole=True) == [{1, 2, 3, 4, 5}, {6, 7}]


def test_without_labels_only_identical_content_joins():
    docs = table(dict(text="a", label="x"), dict(text="a", label="y"), dict(text="b", label="x"))
    assert groups(docs, keep_labels_whole=False) == [{1, 2}, {3}]
    assert groups(docs, keep_labels_whole=True) == [{1, 2, 3}]


def test_the_same_image_bytes_under_two_uris_are_one_piece_of_content():
    photo, other = b"\xff\xd8 the same photo", b"\xff\xd8 another"
    docs = table(dict(modality="image", uri="a.jpg", blob=photo), dict(modality="image", uri="copy/b.jpg", blob=photo),
                 dict(modality="image", uri="c.jpg", blob=other), dict(modality="image", uri="c.jpg"),
                 dict(modality="image", uri="not-loaded.jpg"), dict(modality="text", text="a.jpg"))
    assert groups(docs, keep_labels_whole=False) == [{1, 2}, {3}, {4}, {5}, {6}]


def test_two_chunk_documents_join_through_either_chunk():
    """CLIP / scored pairs: a sentence in two pairs joins them, an image with two captions too."""
    def pair(first: str, second: str) -> dict:
        return dict(modality="pair", chunks=[dict(modality="text", text=first), dict(modality="text", text=second)])
    docs = table(pair("s1", "s2"), pair("s2", "s3"), pair("s4", "s5"), pair("s5", "s4"), pair("s6", "s7"))
    assert groups(docs, keep_labels_whole=False) == [{1, 2}, {3, 4}, {5}]


def test_a_document_with_nothing_shared_has_no_edge():
    """Split by document: no labels kept whole, so flat documents give no edges at all (each is its own
    group unless its content repeats: the same primary node)."""
    primary, owner, v = document_graph(table(dict(text="a", label="x"), dict(text="a", label="y")), False)
    assert owner.size == v.size == 0 and primary[0] == primary[1]


def test_near_duplicates_join_through_their_duplicate_group():
    """Documents 1 and 2 (different content) are one near-duplicate cluster, kept id 1; document 3 is in
    none; 4 and 5 are another cluster. Only documents marked with the same duplicate_group join."""
    docs = table(dict(text="a photo", duplicate_group="0000000000000001"),
                 dict(text="the photo, cropped", duplicate_group="0000000000000001"),
                 dict(text="another photo"),
                 dict(text="b", label="x", duplicate_group="0000000000000004"),
                 dict(text="b, resized", label="y", duplicate_group="0000000000000004"))
    primary, owner, v = document_graph(docs, keep_labels_whole=False)
    assert owner.tolist() == [0, 1, 3, 4]
    assert groups(docs, keep_labels_whole=False) == [{1, 2}, {3}, {4, 5}]
    assert groups(docs, keep_labels_whole=True) == [{1, 2}, {3}, {4, 5}]


def test_a_cluster_node_is_not_a_content_or_label_node():
    """The same string as a duplicate_group, a text and a label: three different nodes (salted apart)."""
    docs = table(dict(text="0000000000000002", duplicate_group="0000000000000002", label="0000000000000002"),
                 dict(text="other"))
    primary, owner, v = document_graph(docs, keep_labels_whole=True)
    assert owner.tolist() == [0, 0] and len({int(primary[0]), *v.tolist()}) == 3


def test_label_hashes_are_the_column_hashes_of_labels_and_0_without_one():
    labels = pa.array(["x", None, "y", "x", None])
    expected = column_hashes(labels)
    expected[[1, 4]] = 0
    assert label_hashes(labels).tolist() == expected.tolist()
    docs = table(dict(text="a", label="x"), dict(text="b"), dict(text="c", label="y"))
    given = document_graph(docs, True, label_hashes(docs.column("label")))
    assert [x.tolist() for x in given] == [x.tolist() for x in document_graph(docs, True)]


@pytest.mark.parametrize("layout, split_by, whole", [
    ("pairs", "label", True), ("pairs", "document", True), ("labeled", "label", True),
    ("labeled", "document", False), ("scores", "label", False), ("values", "label", False)])
def test_which_layouts_keep_labels_whole(layout, split_by, whole):
    assert keeps_labels_whole(layout, split_by) is whole
