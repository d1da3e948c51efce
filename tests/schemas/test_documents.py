"""schemas.documents: the candidate schema and dead letters as Arrow batches."""
import pyarrow as pa

from schemas.documents import CANDIDATE_SCHEMA, DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA, KEY, RAW, DeadLetter, dead_letter_batch


def test_candidate_schema_is_document_schema_without_id_plus_key_and_raw_row():
    assert CANDIDATE_SCHEMA.names == [n for n in DOCUMENT_SCHEMA.names if n != "id"] + [KEY, RAW]
    assert CANDIDATE_SCHEMA.field(KEY).type == pa.uint64() and CANDIDATE_SCHEMA.field(RAW).type == pa.string()
    for field in CANDIDATE_SCHEMA:
        if field.name not in (KEY, RAW):
            assert DOCUMENT_SCHEMA.field(field.name).equals(field)


def test_document_chunks_share_the_content_fields():
    chunk = DOCUMENT_SCHEMA.field("chunks").type.value_type
    assert [f.name for f in chunk] == ["modality", "text", "uri", "blob", "mime_type", "width", "height", "point_cloud",
                                       "point_cloud_from"]
    assert DOCUMENT_SCHEMA.field("point_cloud").type == pa.list_(pa.list_(pa.float32(), 3))


def test_dead_letter_defaults_and_batch():
    letters = [DeadLetter("a.csv", 3, "read", "field_count", "row has 3 fields", "x,y,z"),
               DeadLetter(None, None, "read", "compressed", "the file is compressed")]
    assert letters[1].raw is None
    batch = dead_letter_batch(letters)
    assert batch.schema.equals(DEAD_LETTER_SCHEMA)
    assert batch.to_pylist() == [letter._asdict() for letter in letters]


def test_dead_letter_batch_of_none_is_empty():
    batch = dead_letter_batch([])
    assert batch.num_rows == 0 and batch.schema.equals(DEAD_LETTER_SCHEMA)

