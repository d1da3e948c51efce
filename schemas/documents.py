"""Arrow schemas of a training document and of a dead letter.

A document row: `id`, `label`, `score`, `modality` (text, image, mesh, or pair for two-chunk documents),
its content (`text`, `uri`, `blob` and the media fields), `chunks` for two-chunk documents, where it came from,
and its `split` (with --split).
"""
from typing import NamedTuple, Optional

import pyarrow as pa

# Media fields shared by a document and a chunk; the media stage fills them, the text path leaves them null.
_CONTENT_FIELDS = [
    pa.field("text", pa.string()),
    pa.field("uri", pa.string()),
    pa.field("blob", pa.binary()),
    pa.field("mime_type", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    # (N, 3) float32 points, stored as a list of 3-element lists.
    pa.field("point_cloud", pa.list_(pa.list_(pa.float32(), 3))),
    # Where point_cloud came from: "surface" (sampled over a mesh's triangles) or "points" (drawn from a file
    # of points only); null without a cloud, or when a document read with its cloud does not say.
    pa.field("point_cloud_from", pa.string()),
]

CHUNK_TYPE = pa.struct([pa.field("modality", pa.string())] + _CONTENT_FIELDS)

# Where a docarray document keeps its label and score, as Finetuner expects: tags {LABEL_TAG: ..., SCORE_TAG: ...}.
# Here rather than in schemas.docarray_docs, so that writing `.docs` shards from Arrow does not import
# docarray (which imports torch whenever torch is installed: seconds per run).
LABEL_TAG = "finetuner_label"
SCORE_TAG = "finetuner_score"

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("modality", pa.string(), nullable=False),
        *_CONTENT_FIELDS,
        pa.field("chunks", pa.list_(CHUNK_TYPE)),
        pa.field("source_file", pa.string()),
        pa.field("source_row", pa.int64()),
        # With --split: the split the document belongs to (null without).
        pa.field("split", pa.string()),
        # With --near-duplicates: the id of the document kept for its near-duplicate cluster (its own id for
        # that document); null for a document with no near duplicate, and without --near-duplicates.
        pa.field("duplicate_group", pa.string()),
    ]
)

# A document removed as a duplicate, or one of a near-duplicate cluster: one row of `duplicates/*.parquet`.
DUPLICATE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),  # its id when it is in the dataset; null when removed as an exact duplicate
        pa.field("kept_id", pa.string(), nullable=False),  # the document kept for it (its cluster's)
        pa.field("kind", pa.string(), nullable=False),  # "exact" or "near"
        pa.field("similarity", pa.float64(), nullable=False),  # 1.0 for exact; near: its closest match's
        pa.field("removed", pa.bool_(), nullable=False),  # True when it is not in the documents
        pa.field("modality", pa.string()),
        pa.field("label", pa.string()),  # label and text: null for an exact duplicate (the kept document's)
        pa.field("text", pa.string()),
        pa.field("uri", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("source_row", pa.int64()),
    ]
)

DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string()),
        pa.field("source_row", pa.int64()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason_class", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string()),
    ]
)


# A candidate document, as stages hand it on before ids are given: DOCUMENT_SCHEMA's columns without `id`,
# plus KEY, a uint64 content hash that decides the write bucket, duplicate detection and the id, and RAW,
# the CSV row it came from as text, kept until the media stage (for its dead letters) and null after it.
KEY = "_key"
RAW = "_raw"
CANDIDATE_SCHEMA = pa.schema([f for f in DOCUMENT_SCHEMA if f.name != "id"]
                             + [pa.field(KEY, pa.uint64()), pa.field(RAW, pa.string())])


class DeadLetter(NamedTuple):
    """An input row (or file, or document) that did not become training data, and why, for a person.

    source_file/source_row: where it came from (row: the 1-based physical line of a CSV, the 1-based
    position in a .docs file; None for a whole file). stage: the stage that refused it. reason_class: a
    short key listed in schemas.reasons. raw: the original row or URI, when there is one."""

    source_file: Optional[str]
    source_row: Optional[int]
    stage: str
    reason_class: str
    reason: str
    raw: Optional[str] = None


def dead_letter_batch(letters: list[DeadLetter]) -> pa.RecordBatch:
    """Dead letters -> one RecordBatch of DEAD_LETTER_SCHEMA."""
    return pa.RecordBatch.from_pylist([letter._asdict() for letter in letters], schema=DEAD_LETTER_SCHEMA)
