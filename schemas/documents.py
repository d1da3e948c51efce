"""Arrow schemas of a training document and of a dead letter.

A document row: `id`, `label`, `score`, `modality` (text, image, mesh, or pair for two-chunk documents),
its content (`text`, `uri`, `blob` and the media fields), `chunks` for two-chunk documents, and where it came from.
"""
import pyarrow as pa

MODALITIES = ("text", "image", "mesh")
PAIR = "pair"
# File extensions (lower case, no dot) that make a URI an image or a mesh.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff")
MESH_EXTENSIONS = ("off", "obj", "ply", "stl", "glb", "gltf")

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
]

CHUNK_TYPE = pa.struct([pa.field("modality", pa.string())] + _CONTENT_FIELDS)

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


def dead_letter_batch(rows: list[dict]) -> pa.RecordBatch:
    """Dead-letter dicts (keys of DEAD_LETTER_SCHEMA) -> one RecordBatch."""
    return pa.RecordBatch.from_pylist(rows, schema=DEAD_LETTER_SCHEMA)
