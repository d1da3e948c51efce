"""transforms.duplicates.records: rows of the duplicates table, for exact repeats and near duplicates."""
import numpy as np
import pyarrow as pa

from schemas.documents import CANDIDATE_SCHEMA, DUPLICATE_SCHEMA
from transforms.duplicates.records import EXACT, NEAR, duplicate_records, exact_duplicates


def docs() -> pa.Table:
    return pa.Table.from_pylist([
        {"modality": "image", "uri": "https://user:secret@host/a.jpg", "label": "cat", "source_file": "in.csv",
         "source_row": 3},
        {"modality": "text", "text": "hello", "label": None, "source_file": "gs://k:v@bucket/in.csv", "source_row": 8},
    ], schema=CANDIDATE_SCHEMA)


def test_an_exact_repeat_names_the_id_its_key_gives_and_keeps_no_credentials():
    (row,) = exact_duplicates(docs(), np.array([0]), np.array([0xABC, 1], dtype=np.uint64)).to_pylist()
    assert row == {"id": None, "kept_id": "0000000000000abc", "kind": EXACT, "similarity": 1.0, "removed": True,
                   "modality": "image", "label": None, "text": None, "uri": "https://REDACTED@host/a.jpg",
                   "source_file": "in.csv", "source_row": 3}


def test_near_records_carry_their_own_id_similarity_and_whether_removed():
    batch = duplicate_records(docs(), np.array([1, 0]), pa.array(["k1", "k2"]), NEAR, np.array([0.5, 0.97]),
                              np.array([True, False]), pa.array(["d1", "d0"]))
    assert batch.schema == DUPLICATE_SCHEMA
    rows = batch.to_pylist()
    assert [(r["id"], r["kept_id"], r["similarity"], r["removed"], r["text"]) for r in rows] == [
        ("d1", "k1", 0.5, True, "hello"), ("d0", "k2", 0.97, False, None)]
    assert rows[0]["source_file"] == "gs://REDACTED@bucket/in.csv"
