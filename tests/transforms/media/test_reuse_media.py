"""The reuse stage on its own: candidate documents whose media are in a previous dataset's shards get them
from there, the others go through LoadMedia, and what comes out is what LoadMedia alone gives."""
import shutil
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from PIL import Image

from conftest import TEST_DATA
from schemas.documents import DOCUMENT_SCHEMA
from schemas.options import MediaOptions
from transforms.group import finish_documents
from transforms.layout import LayoutSpec, apply_layout
from transforms.media.load_media import LoadMedia, keyed_by_content, load_media, to_batch
from transforms.media.media_refs import candidate_references, match_key, previous_keys
from transforms.media.previous_dataset import PreviousDataset
from transforms.media.reuse_media import ReuseMedia
from transforms.stage import StageOutput, SumCounts

OPTIONS = MediaOptions(point_cloud_size=32, decode_timeout=0)


def candidates(media: Path, layout: str, modalities: tuple, rows: list[tuple]) -> pa.RecordBatch:
    """CSV rows of a file in `media` -> the candidates the layout stage makes of them (media paths relative)."""
    columns = {f"f{i}": [r[i] for r in rows] for i in range(len(rows[0]))}
    columns.update(source_file=[f"{media}/in.csv"] * len(rows), source_row=list(range(1, len(rows) + 1)))
    spec = LayoutSpec(layout, modalities, media_root=str(media))
    docs, dead, _ = apply_layout(pa.RecordBatch.from_pydict(columns), spec)
    assert not dead
    return docs


def loaded(docs: pa.RecordBatch, media: Path) -> pa.RecordBatch:
    """What LoadMedia makes of candidate documents (every file must load)."""
    good, dead, _ = load_media(docs.to_pylist(), OPTIONS, str(media))
    assert not dead
    return keyed_by_content(to_batch(good, docs.schema))


def previous_dataset(folder: Path, docs: pa.RecordBatch, media: Path) -> PreviousDataset:
    """A previous dataset of the loaded documents: one Parquet shard, and one shard that is gone."""
    documents, _ = finish_documents(pa.Table.from_batches([docs]), False)
    (folder / "documents").mkdir(parents=True)
    pq.write_table(documents, folder / "documents" / "part-00000-of-00002.parquet")
    shards = tuple(str(folder / "documents" / f"part-0000{i}-of-00002.parquet") for i in range(2))
    return PreviousDataset(str(folder), "previous-run", shards, str(media), frozenset())


def draw(media: Path, *names: str) -> None:
    for i, name in enumerate(names):
        Image.new("RGB", (8 + i, 6), (40 * i, 90, 200)).save(media / name)


@pytest.mark.parametrize("layout, modalities, rows", [
    ("labeled", ("image", "text"), [("a.png", "x"), ("b.png", "y"), ("c.png", "x")]),
    ("pairs", ("text", "image"), [("a cat", "a.png"), ("a dog", "b.png"), ("a bird", "c.png")]),  # CLIP: chunks
    ("scores", ("image", "mesh"), [("a.png", "box.obj", "0.5"), ("b.png", "box.obj", "1"), ("c.png", "box.obj", "0")]),
])
def test_documents_found_in_the_previous_dataset_are_not_loaded_again(tmp_path, layout, modalities, rows):
    media = tmp_path / "media"
    media.mkdir()
    draw(media, "a.png", "b.png", "c.png")
    shutil.copy(TEST_DATA / "meshes" / "box.obj", media / "box.obj")
    docs = candidates(media, layout, modalities, rows)
    expected = pa.Table.from_batches([loaded(docs, media)]).sort_by("source_row")
    previous = previous_dataset(tmp_path / "previous", loaded(docs.slice(0, 2), media), media)
    (media / "a.png").unlink()  # were they loaded again, their documents would be dead letters
    (media / "b.png").unlink()

    def same_documents(batches):
        assert pa.Table.from_batches(batches).sort_by("source_row").equals(expected)

    def reuse_counts(counts):
        assert counts[0]["documents_reused"] == 2 and counts[0]["previous_shards_unreadable"] == 1
        loaded_again = {row[i] for row in rows[2:] for i, kind in enumerate(modalities) if kind != "text"}
        assert counts[0]["media_files"] == len(loaded_again)
        assert "dead_letters" not in counts[0]

    with TestPipeline() as p:
        flow = (StageOutput.start(p | beam.Create([docs]))
                | ReuseMedia(previous, OPTIONS, str(media), str(tmp_path / "staging"), 3,
                             LoadMedia(OPTIONS, 2, str(media))))
        assert_that(flow.main | "Documents" >> beam.Flatten(), same_documents, label="SameDocuments")  # see StageOutput
        counts = flow.counts | beam.Flatten(pipeline=p) | beam.CombineGlobally(SumCounts())
        assert_that(counts, reuse_counts, label="Counts")


def test_a_document_is_reused_when_one_previous_shard_holds_all_its_media(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    draw(media, "a.png", "b.png")
    (tmp_path / "previous" / "documents").mkdir(parents=True)
    shards = []
    for i, name in enumerate(("a.png", "b.png")):  # one labeled document per shard
        documents, _ = finish_documents(pa.Table.from_batches([loaded(candidates(media, "labeled", (
            "image", "text"), [(name, "x")]), media)]), False)
        shards.append(str(tmp_path / "previous" / "documents" / f"part-{i}.parquet"))
        pq.write_table(documents, shards[-1])
    previous = PreviousDataset(str(tmp_path / "previous"), "previous-run", tuple(shards), str(media), frozenset())
    rows = [("a.png", "b.png", "0.5"), ("b.png", "b.png", "1")]  # media in two shards; twice the same medium
    docs = candidates(media, "scores", ("image", "image"), rows)
    expected = pa.Table.from_batches([loaded(docs, media)]).sort_by("source_row")

    def same_documents(batches):
        assert pa.Table.from_batches(batches).sort_by("source_row").equals(expected)

    def reuse_counts(counts):
        assert counts[0]["documents_reused"] == 1 and counts[0]["media_reused"] == 2
        assert counts[0]["media_files"] == 2  # the first row's two files, loaded again

    with TestPipeline() as p:
        flow = (StageOutput.start(p | beam.Create([docs]))
                | ReuseMedia(previous, OPTIONS, str(media), str(tmp_path / "staging"), 2,
                             LoadMedia(OPTIONS, 2, str(media))))
        assert_that(flow.main | "Documents" >> beam.Flatten(), same_documents, label="SameDocuments")
        counts = flow.counts | beam.Flatten(pipeline=p) | beam.CombineGlobally(SumCounts())
        assert_that(counts, reuse_counts, label="Counts")


def test_only_media_this_run_loads_and_can_name_are_references(tmp_path):
    media = str(tmp_path)
    rows = [("a.png", "x"), ("https://user:secret@example.org/b.png", "x"), ("https://example.org/c.png", "x")]
    docs = candidates(tmp_path, "labeled", ("image", "text"), rows)
    references, reusable = candidate_references(docs, OPTIONS, media)
    assert references.column("key").to_pylist() == [match_key("image", f"{media}/a.png"),
                                                     match_key("image", "https://example.org/c.png")]
    assert reusable.tolist() == [True, False, True]  # credentials are redacted in datasets: never matched
    _, reusable = candidate_references(docs, MediaOptions(fetch_remote=False), media)
    assert reusable.tolist() == [True, False, False]  # remote files are not loaded at all
    with_blob = docs.set_column(docs.schema.get_field_index("blob"), "blob", pa.array([b"\x89PNG", None, None]))
    assert candidate_references(with_blob, OPTIONS, media)[1].tolist() == [False, False, True]  # LoadMedia verifies it


def test_a_previous_dataset_names_its_media_by_location():
    docs = pa.Table.from_pylist([
        {"modality": "image", "uri": "a.png", "width": 8, "source_file": "/old/in.csv"},
        {"modality": "image", "uri": "a.png", "width": 8, "source_file": "/old/in.csv"},  # a repeat: listed once
        {"modality": "mesh", "uri": "m.obj", "point_cloud_from": "surface", "source_file": "/old/in.csv"},
        {"modality": "image", "uri": "d.png", "width": 8, "source_file": "/old/in.docs"},  # from a .docs input
        {"modality": "image", "uri": "e.png", "source_file": "/old/in.csv"},  # not loaded (--no-convert-to-blob)
        {"modality": "pair", "chunks": [{"modality": "text", "text": "a cat"},
                                        {"modality": "image", "uri": "https://example.org/c.png", "width": 4}]},
    ], schema=DOCUMENT_SCHEMA)
    keys = previous_keys(docs, "/old", frozenset({"/old/in.docs"}))
    assert keys.to_pylist() == [
        {"key": match_key("image", "/old/a.png"), "row": 0, "slot": -1},
        {"key": match_key("mesh", "/old/m.obj"), "row": 2, "slot": -1},
        {"key": match_key("image", "https://example.org/c.png"), "row": 5, "slot": 1}]
    assert match_key("image", "https://REDACTED@example.org/a.png") is None
