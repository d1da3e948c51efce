"""pipelines.prepare.build: the job's stages, chained in flow order, and the chain runs to a commit."""
import dataclasses

import apache_beam as beam
import pytest

from conftest import documents, write_csv
from pipelines.prepare.build import build
from pipelines.prepare.job import plan_job
from pipelines.prepare.run import run
from schemas.docarray_docs import TrainingDoc, docs_to_bytes
from schemas.options import CSVOptions, DuplicateOptions, MediaOptions, OutputOptions, ReadTuning, SplitOptions

CSV_STAGES = ["ReadCsv", "SampleRows", "ApplyLayout"]
END_STAGES = ["GroupDocuments", "WriteShards", "WriteDeadLetters", "WriteDuplicates", "Commit"]
NO_MEDIA = MediaOptions(convert_to_blob=False, create_point_clouds=False)


def planned(folder, *names: str, media: MediaOptions = MediaOptions(), out: str = "out", **csv):
    """A job planned on the named inputs in folder, writing to folder/out."""
    return plan_job([str(folder / n) for n in names], CSVOptions(**csv), OutputOptions(str(folder / out)),
                    ReadTuning(), run_id="r1", media=media)


def stages(job, **kwargs) -> dict:
    """{label: applied transform} of the top-level transforms build() applies to a new pipeline, in order."""
    pipeline = beam.Pipeline()
    build(pipeline, job, **kwargs)
    return {t.full_label: t for t in pipeline.transforms_stack[0].parts}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder with text pairs (pairs.csv), labeled image paths (images.csv), labeled meshes (meshes.csv)
    and a DocList of two labeled texts (texts.docs)."""
    folder = tmp_path_factory.mktemp("inputs")
    write_csv(folder, "How old are you?,What is your age?\nHi,Hello\n", "pairs.csv")
    write_csv(folder, "images/a.jpg,cat\nimages/b.png,dog\n", "images.csv")
    write_csv(folder, "meshes/a.off,cube\nmeshes/b.stl,teapot\n", "meshes.csv")
    docs = [TrainingDoc(modality="text", text=t, tags={"finetuner_label": "x"}) for t in ("one", "two")]
    (folder / "texts.docs").write_bytes(docs_to_bytes(docs))
    return folder


def test_text_csv_stages_in_flow_order(inputs):
    assert list(stages(planned(inputs, "pairs.csv"))) == ["Inputs", *CSV_STAGES, *END_STAGES]


def test_near_duplicates_come_after_the_group_stage_and_before_the_split(inputs):
    job = dataclasses.replace(planned(inputs, "pairs.csv"), duplicates=DuplicateOptions(near=True),
                              split=SplitOptions((("train", 0.5), ("test", 0.5))))
    assert list(stages(job)) == ["Inputs", *CSV_STAGES, "GroupDocuments", "NearDuplicates", "SplitDocuments",
                                 *END_STAGES[1:]]


@pytest.mark.parametrize("name, media, loads", [
    ("images.csv", MediaOptions(), True),
    ("images.csv", MediaOptions(convert_to_blob=False), False),
    ("meshes.csv", MediaOptions(convert_to_blob=False), True),
    ("meshes.csv", MediaOptions(create_point_clouds=False), False),
])
def test_media_load_after_the_layout_only_when_the_run_loads_media(inputs, name, media, loads):
    media_stage = ["LoadMedia"] if loads else []
    assert list(stages(planned(inputs, name, media=media))) == ["Inputs", *CSV_STAGES, *media_stage, *END_STAGES]


def test_docs_inputs_read_as_doclists(inputs):
    assert list(stages(planned(inputs, "texts.docs", media=NO_MEDIA))) == ["DocListInputs", "ReadDocLists", *END_STAGES]
    assert list(stages(planned(inputs, "texts.docs"))) == ["DocListInputs", "ReadDocLists", "LoadMedia", *END_STAGES]


def test_docs_and_csv_inputs_join_before_the_media(inputs):
    labels = list(stages(planned(inputs, "pairs.csv", "texts.docs", layout="labeled")))
    assert labels == ["Inputs", *CSV_STAGES, "DocListInputs", "ReadDocLists", "AllCandidates", "LoadMedia", *END_STAGES]


def test_planned_here_starts_from_byte_ranges(inputs):
    """For the DaskRunner the launcher cuts the files: the flow starts from ranges, ReadCsv only parses."""
    job = planned(inputs, "pairs.csv")
    here, there = stages(job, plan_here=True), stages(job)
    assert list(here)[:2] == ["InputRanges", "ReadCsv"] and list(here)[1:] == list(there)[1:]
    assert [t.full_label for t in here["ReadCsv"].parts] == ["ReadCsv/ParseRanges", "ReadCsv/SplitParseRanges"]
    assert [t.full_label for t in there["ReadCsv"].parts][:2] == ["ReadCsv/PlanRanges", "ReadCsv/SpreadRanges"]


def test_the_pipeline_proto_names_the_same_stages(inputs):
    pipeline = beam.Pipeline()
    build(pipeline, planned(inputs, "pairs.csv", "texts.docs", layout="labeled", media=NO_MEDIA))
    proto = pipeline.to_runner_api()
    root = proto.components.transforms[proto.root_transform_ids[0]]
    names = [proto.components.transforms[t].unique_name for t in root.subtransforms]
    assert names == ["Inputs", *CSV_STAGES, "DocListInputs", "ReadDocLists", "AllCandidates", *END_STAGES]


def test_the_built_chain_runs_to_a_committed_dataset(inputs):
    job = planned(inputs, "pairs.csv", "texts.docs", layout="labeled", media=NO_MEDIA, out="ran")
    manifest = run(job, [])
    assert (inputs / "ran" / "_SUCCESS").exists() and manifest["run_id"] == "r1"
    assert [(label, text) for label, _, _, text, *_ in documents(inputs / "ran")] == [
        ("Hello", "Hi"), ("What is your age?", "How old are you?"), ("x", "one"), ("x", "two")]
    assert manifest["counts"]["documents_written"] == 4 and manifest["reconciliation"]["reconciled"]
