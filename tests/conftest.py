"""Shared helpers for the end-to-end tests: run `finetune-etl prepare` in-process and read what it wrote."""
import csv
import io
import json
from pathlib import Path

import pytest

import pipelines
from pipelines.cli import main

# Fixtures every test module may use: `http_server` (a loopback HTTP server), `gcs` / `gcs_server` (the GCS emulator).
pytest_plugins = ["support.http_server", "support.gcs_emulator"]

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"  # real files no one here wrote (images, meshes) and small CSVs; see SOURCES.md there



def write_csv(tmp_path: Path, text_or_bytes: str | bytes, name: str = "input.csv") -> Path:
    """Write CSV text (verbatim: no newline translation) or bytes to tmp_path/name; returns the path."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text_or_bytes, bytes):
        path.write_bytes(text_or_bytes)
    else:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text_or_bytes)
    return path


def python_csv_records(text: str, dialect: str = "excel") -> list[tuple[int, list[str]]]:
    """(1-based line where each non-empty record starts, its fields), as Python's csv reads the text of a
    file opened as utf-8-sig (a leading BOM marks the encoding; it is not content)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), dialect=dialect)
    records, line_before = [], 0
    for record in reader:
        if record:
            records.append((line_before + 1, record))
        line_before = reader.line_num
    return records


def _fresh(tmp_path: Path, stem: str, suffix: str = "") -> Path:
    n = 0
    while (tmp_path / f"{stem}-{n}{suffix}").exists():
        n += 1
    return tmp_path / f"{stem}-{n}{suffix}"


def run_prepare(tmp_path: Path, csv_text_or_path: str | bytes | Path, *args: str, expect_rc: int = 0) -> Path:
    """Run `finetune-etl prepare` in-process on a CSV (text, bytes or an existing path); returns the output folder.

    Each call writes to a new folder tmp_path/out-N. Extra `args` are CLI and Beam options.
    """
    if isinstance(csv_text_or_path, Path):
        source = csv_text_or_path
    else:
        source = write_csv(tmp_path, csv_text_or_path, _fresh(tmp_path, "input", ".csv").name)
    out = _fresh(tmp_path, "out")
    rc = main(["prepare", "--input", str(source), "--output", str(out), *args])
    assert rc == expect_rc, f"finetune-etl prepare returned {rc}, expected {expect_rc}"
    return out


def _sort_key(item):
    return json.dumps(item, default=repr)


def sorted_docs(items) -> list[tuple]:
    """Document tuples in the order `documents` returns them (to compare with an expected list)."""
    return sorted(items, key=_sort_key)


def documents(out: Path, with_ids: bool = False) -> list[tuple]:
    """Documents of a dataset as a sorted list of (label, score, modality, text, uri, chunks) tuples
    (chunks reduced to (modality, text, uri) per chunk); with_ids puts the id first."""
    table = pipelines.load_table(str(out))
    rows = []
    for row in table.to_pylist():
        chunks = None if row["chunks"] is None else tuple((c["modality"], c["text"], c["uri"]) for c in row["chunks"])
        item = (row["label"], row["score"], row["modality"], row["text"], row["uri"], chunks)
        rows.append(((row["id"],) + item) if with_ids else item)
    return sorted_docs(rows)


def text_documents(label: str, *texts: str) -> list[tuple]:
    """The `documents()` tuples of text documents with one label."""
    return [(label, None, "text", text, None, None) for text in texts]


def dead_letters(out: Path) -> list[dict]:
    """Dead letters of a dataset as dicts, sorted by (source_file, source_row)."""
    return sorted(pipelines.load_dead_letters(str(out)).to_pylist(), key=lambda d: (d["source_file"], d["source_row"]))


def counts(out: Path) -> dict:
    return pipelines.load_manifest(str(out))["counts"]


def assert_reconciled(out: Path) -> dict:
    """Both reconciliation equations hold, checked from the raw counts and by the manifest; returns counts."""
    manifest = pipelines.load_manifest(str(out))
    c = manifest["counts"]
    get = lambda k: c.get(k, 0)
    rejected = get("documents_rejected")  # media dead letters: documents, not rows (README, "How rows are counted")
    assert get("rows_read") == get("rows_documented") + get("dead_letters") - rejected + get("sampled_out"), c
    assert get("candidate_documents") == (get("documents_written") + get("duplicates_removed")
                                          + get("near_duplicates_removed") + rejected), c
    assert manifest["reconciliation"]["reconciled"] is True, manifest["reconciliation"]
    return c


@pytest.fixture(scope="session")
def test_data() -> Path:
    """tests/data: the real images and meshes, and small CSVs, the tests read."""
    return TEST_DATA
