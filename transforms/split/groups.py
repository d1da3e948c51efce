"""Each document's split group, found bucket by bucket (numpy and scipy, no Beam).

A group is a connected component of the document graph (transforms/split/nodes.py), named by its smallest
node. A write bucket holds the edges of all its documents, so most of the work is done where they are:

1. `local_groups`, in each bucket: every node of the bucket's edges gets its local root, the smallest node
   of its component in those edges alone; a document's local root is its primary node's (the node itself
   when no edge of the bucket has it). The bucket's `links` are (node, local root) for every node of its
   edges and every primary node.
2. `cross_links`, per partition of the nodes (node % partitions), over the links of every bucket: a node
   found with two or more local roots (it is in several buckets) joins their components; each of its
   roots is linked to the smallest, and the partition's links are reduced to a forest.
3. `groups_of`, in one place: the links of every partition resolved at once (scipy); a document's group
   is the smallest root connected to its local root, or its local root when no link has it.

Every node of a component is in some bucket's local component, whose root is its smallest node, and the
cross links join exactly the local components that share a node: so a document's group is the smallest
node of its whole component, whatever the buckets, partitions, runner or input order. What meets in one
place is at most one link per extra bucket a node is found in: each label for every bucket its documents
are in beyond the first, and content repeated across buckets.
"""
import numpy as np

from transforms.split.components import component_of, forest, resolve_residual, smallest_connected


def local_groups(primary: np.ndarray, owner: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bucket's documents' primary nodes (n,) uint64 and its edges, from the primary node of document
    owner (m,) to node v (m,) uint64 (document_graph) -> (roots, nodes, node_roots): each document's local
    root (n,); and the bucket's links, every primary node and every node of its edges ascending (k,), with
    its local root (k,)."""
    nodes, index = np.unique(np.concatenate([primary, v]), return_inverse=True)
    node_roots = smallest_connected(nodes, index[:primary.size][owner], index[primary.size:])
    return node_roots[index[:primary.size]], nodes, node_roots


def cross_links(nodes: np.ndarray, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Links (node, local root) (k,) uint64 from every bucket, for the nodes of one partition -> the links
    (a, b), a > b, that join local roots: each root of a node found with several, linked to its smallest
    root, as a forest (one link per root at most)."""
    order = np.argsort(nodes)
    nodes, roots = nodes[order], roots[order]
    starts = np.flatnonzero(np.r_[True, nodes[1:] != nodes[:-1]]) if nodes.size else np.zeros(0, dtype=np.intp)
    smallest = np.repeat(np.minimum.reduceat(roots, starts), np.diff(np.r_[starts, nodes.size]))
    linked = roots != smallest
    return forest(roots[linked], smallest[linked])


def groups_of(roots: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Documents' local roots (n,) and the cross links (a, b) of every partition, uint64 -> (n,) uint64
    each document's group."""
    return component_of(roots, *resolve_residual(a, b))

