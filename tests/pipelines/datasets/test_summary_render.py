"""pipelines.datasets.summary_render: a summary dict as tables, and how paths and reasons are shown."""
import copy
import os

import pytest
from rich.console import Console

from conftest import run_prepare
from pipelines.datasets.summary import summarize
from pipelines.datasets.summary_render import BAR_WIDTH, render, shown_path, shown_reason

LABELED = "Hello!,greeting\nHi there,greeting\nBonjour,[bold]french[/bold]\ntoo,many,fields\nno label,\n"
TITLES = ["Dataset ", "Documents by modality", "Labels: ", "Scores: ", "Images: ", "Meshes", "Dead letters: ",
          "Inputs", "Options", "Shards", "Reconciliation"]


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> dict:
    """summarize() of labeled text with a markup-like label and two dead letters (read, layout)."""
    return summarize(str(run_prepare(tmp_path_factory.mktemp("render"), LABELED, "--is-labeled")))


def rendered(s: dict, width: int = 160) -> str:
    console = Console(record=True, width=width, highlight=False, markup=False)
    render(s, console)
    return console.export_text()


def titles(text: str) -> list[str]:
    return [t for t in TITLES if any(line.startswith(t) for line in text.splitlines())]


def test_sections_with_nothing_to_show_are_left_out(summary):
    text = rendered(summary)
    assert titles(text) == ["Dataset ", "Documents by modality", "Labels: ", "Dead letters: ", "Inputs", "Options",
                            "Shards", "Reconciliation"]
    clean = copy.deepcopy(summary) | {"labels": None, "dead_letters": {"total": 0, "by_stage": {}, "top": []}}
    assert titles(rendered(clean)) == ["Dataset ", "Documents by modality", "Inputs", "Options", "Shards",
                                       "Reconciliation"]


def test_labels_and_paths_are_shown_as_they_are(summary, capsys, monkeypatch):
    """The default console reads no markup: a label like [bold]x[/bold] is printed, not styled."""
    monkeypatch.setenv("COLUMNS", "160")
    render(summary)
    out = capsys.readouterr().out
    assert "[bold]french[/bold]" in out and "Labels: 2, documents per label min / median / max: 1 / 1.5 / 2" in out


def test_scores_images_and_meshes(summary):
    s = copy.deepcopy(summary)
    bins = [{"low": i / 10, "high": (i + 1) / 10, "documents": n} for i, n in enumerate([0, 1, 0, 0, 0, 0, 0, 0, 2, 4])]
    s["scores"] = {"count": 7, "min": 0.1, "median": 0.9, "max": 1, "histogram": bins}
    s["images"] = {"count": 3, "width": {"min": 10, "median": 20.0, "max": 3000},
                   "height": {"min": 5, "median": 5.0, "max": 5}, "mime_types": {"image/jpeg": 2, "image/png": 1}}
    s["meshes"] = {"count": 2, "points_per_cloud": None}
    lines = rendered(s).splitlines()
    assert "Scores: 7 pairs, min / median / max: 0.1 / 0.9 / 1" in lines
    bars = {line.split()[0] + " " + line.split()[1]: line for line in lines if line.startswith("[0.")}
    assert bars["[0.9, 1.0]"].endswith("█" * BAR_WIDTH) and bars["[0.8, 0.9)"].rstrip().endswith(" " + "█" * 15)
    assert "█" not in bars["[0.0, 0.1)"]
    assert "Images: 3 (image/jpeg 2, image/png 1)" in lines
    assert any(line.split() == ["width", "10", "20.0", "3,000"] for line in lines)
    assert any(line.split() == ["2", "not", "sampled"] for line in lines)


def test_counts_that_do_not_add_up_say_no(summary):
    s = copy.deepcopy(summary)
    s["checks"][0]["holds"] = False
    text = rendered(s)
    assert any(line.split() == ["counts", "add", "up", "NO"] for line in text.splitlines())
    assert "counts add up       yes" in rendered(summary)


def test_options_are_shown_as_on_off_and_lists(summary):
    s = copy.deepcopy(summary)
    s["options"] = {"media": {"convert_to_blob": False, "fetch_remote": True, "image_box": [224, 160],
                              "image_size": None}}
    line = next(line for line in rendered(s).splitlines() if line.lstrip().startswith("media"))
    assert line.split() == ["media", "convert_to_blob=off", "fetch_remote=on", "image_box=224,160"]


def test_dead_letter_examples_name_file_and_row(summary):
    text = rendered(summary)
    source = summary["inputs"][0]["url"]
    assert "Dead letters: 2 (layout 1, read 1)" in text
    assert f"{shown_path(source)}:4  row has 3 fields" in text and f"{shown_path(source)}:5  the label" in text


def test_shown_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shown_path(str(tmp_path / "data" / "a.csv")) == os.path.join("data", "a.csv")
    assert shown_path(str(tmp_path.parent / "elsewhere.csv")) == str(tmp_path.parent / "elsewhere.csv")
    assert shown_path("gs://bucket/a.csv") == "gs://bucket/a.csv"
    assert shown_path("relative/a.csv") == "relative/a.csv"
    assert shown_path(None) == shown_path("") == "-"


def test_shown_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reason = f"cannot read {tmp_path}/images/a.jpg (not found); {tmp_path.parent}/b.jpg neither"
    assert shown_reason(reason) == f"cannot read images/a.jpg (not found); {tmp_path.parent}/b.jpg neither"


def test_shown_reason_leaves_paths_that_only_contain_the_folder(tmp_path, monkeypatch):
    """Only paths that start with the current folder are shortened: /mnt<cwd>/x.jpg is another file.
    (Fails today: shown_reason replaces the folder anywhere in the text, showing /mntx.jpg.)"""
    monkeypatch.chdir(tmp_path)
    reason = f"cannot read /mnt{tmp_path}/x.jpg"
    assert shown_reason(reason) == reason


def test_labels_and_reasons_with_control_characters_or_markup_print_as_they_are(tmp_path, capsys):
    """A label holding ANSI escapes or rich markup must not recolour or clear the user's terminal: it is
    shown with its control characters escaped and its brackets as text, in summary and in errors."""
    from pipelines.cli import main

    hostile = "\x1b[2J\x1b[31mred\x1b[0m [bold]x[/bold]"
    out = run_prepare(tmp_path, f'a,"{hostile}"\nb,"{hostile}"\n"",empty\n', "--is-labeled")
    console = Console(record=True, width=200)
    render(summarize(str(out)), console)
    shown = console.export_text()
    assert "\x1b" not in shown and "\\x1b[31mred\\x1b[0m [bold]x[/bold]" in shown
    assert main(["errors", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed
