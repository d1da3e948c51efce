"""A prepared dataset as a Hugging Face `datasets.Dataset` with the columns sentence-transformers' losses
expect, built with pyarrow from load_table (no loop over rows):

- pairs  -> (anchor, positive): one row per query-document pair, for MultipleNegativesRankingLoss. Pairs
            are rebuilt from labels: each document that is not a query, labelled L, pairs with the query
            document whose content (text, or uri for media) is L. CLIP pairs: their two chunks.
- scores -> (sentence1, sentence2, score), for CoSENTLoss and CosineSimilarityLoss.
- labeled -> (text, label), label an integer class id (a ClassLabel over the dataset's sorted distinct
            labels, the same ids in every split), for the batch-triplet losses.

Texts are strings; images (labeled images, CLIP pairs) are `datasets.Image` columns that decode to PIL
images (labeled images: the column is `image`). Meshes have no sentence-transformers column: ValueError.
`datasets` is a test dependency of finetune-etl; install it to use this module.
"""
from typing import Optional

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.datasets.load import load_manifest, load_table

CONTENT_COLUMNS = ["text", "uri", "blob"]


def sentence_pairs(url: str, split: Optional[str] = None) -> datasets.Dataset:
    """The dataset at `url` (or one split of it) -> a datasets.Dataset of its layout's sentence-transformers
    columns. ValueError for a layout or modality without such columns, or a split the dataset lacks."""
    manifest = load_manifest(url)
    layout, modalities = manifest["layout"], manifest["modalities"]
    if layout == "pairs" and manifest["clip"]:
        columns = _chunk_columns(load_table(url, ["chunks"], split), modalities, ("anchor", "positive"))
    elif layout == "pairs":
        columns = _query_pairs(load_table(url, ["label", *CONTENT_COLUMNS], split), modalities[0])
    elif layout == "scores":
        table = load_table(url, ["chunks", "score"], split)
        columns = {**_chunk_columns(table, modalities, ("sentence1", "sentence2")),
                   "score": (table.column("score"), datasets.Value("float64"))}
    elif layout == "labeled":
        labels = pc.unique(load_table(url, ["label"]).column("label")).sort().to_pylist()  # ids alike in every split
        columns = _labeled(load_table(url, ["label", *CONTENT_COLUMNS], split), labels, modalities[0])
    else:
        raise ValueError(f"a {layout} dataset has no pairs, scores or labels to train on.")
    table = pa.table({name: array for name, (array, _) in columns.items()})
    features = datasets.Features({name: feature for name, (_, feature) in columns.items()})
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features),
                            fingerprint=f"{manifest['run_id']}-{split or 'all'}-sentence-pairs")


def _content(columns, modality: str) -> tuple:
    """Documents or chunks (anything with text/uri/blob columns) -> their content column and its feature:
    texts as strings, images as the {bytes, path} struct datasets.Image decodes."""
    if modality == "text":
        return _array(columns["text"]), datasets.Value("string")
    if modality == "image":
        blob, uri = _array(columns["blob"]), _array(columns["uri"])
        return pa.StructArray.from_arrays([blob, uri], ["bytes", "path"]), datasets.Image()
    raise ValueError(f"sentence-transformers columns hold texts and images; these documents are {modality}.")


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _chunk_columns(table: pa.Table, modalities: list[str], names: tuple[str, str]) -> dict:
    """Two-chunk documents -> {name: (chunk's content, feature)} for their first and second chunk."""
    chunks = _array(table.column("chunks"))
    pieces = {}
    for position, (name, modality) in enumerate(zip(names, modalities)):
        chunk = pc.list_element(chunks, position)
        pieces[name] = _content({field: chunk.field(field) for field in CONTENT_COLUMNS}, modality)
    return pieces


def _query_pairs(table: pa.Table, modality: str) -> dict:
    """Query-document documents -> anchor (the query's content) and positive (the document's), one row per
    document that is not a query, in the order of the documents."""
    is_query = pc.equal(pc.coalesce(table.column("text"), table.column("uri")), table.column("label")).fill_null(False)
    queries, documents = table.filter(is_query), table.filter(pc.invert(is_query))
    query_rows = pa.table({"label": queries.column("label"), "query": np.arange(queries.num_rows)})
    pairs = (pa.table({"label": documents.column("label"), "document": np.arange(documents.num_rows)})
             .join(query_rows, "label", join_type="inner").sort_by("document"))
    anchor, feature = _content(queries, modality)
    positive, _ = _content(documents, modality)
    return {"anchor": (anchor.take(pairs.column("query")), feature),
            "positive": (positive.take(pairs.column("document")), feature)}


def _labeled(table: pa.Table, names: list[str], modality: str) -> dict:
    """Labeled documents, the dataset's sorted distinct labels -> their content (`text`, or `image`) and
    label as a class id, the label's position in `names`."""
    ids = pc.index_in(table.column("label"), value_set=pa.array(names, pa.string())).cast(pa.int64())
    content = _content(table, modality)
    return {"text" if modality == "text" else "image": content,
            "label": (_array(ids), datasets.ClassLabel(names=names))}
