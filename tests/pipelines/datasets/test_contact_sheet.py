"""pipelines.datasets.contact_sheet: the grid, captions, sampling and output format that sprites and preview share."""
import argparse
import io

import fsspec
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from pipelines.cli import main
from pipelines.datasets.contact_sheet import (LETTERBOX, Items, SheetError, caption_height, choose, font, grid_size,
                                              output_format, placeholder, sheet_parser, shorten, write_sheet)
from schemas.options import ConfigError


def items(ids, labels, captions=None) -> Items:
    captions = captions or [label or "" for label in labels]
    return Items(pa.array(ids, pa.string()), pa.array(labels, pa.string()), pa.array(captions, pa.string()),
                 pa.array([f"content of {i}" for i in ids], pa.string()))


@pytest.mark.parametrize("n, tile, columns, size", [
    (1, 128, None, (128, 128 + caption_height(128), 1, 1)),
    (10, 64, None, (4 * 64, 3 * (64 + caption_height(64)), 4, 3)),   # square-ish: ceil(sqrt(10)) columns
    (16, 64, None, (4 * 64, 4 * (64 + caption_height(64)), 4, 4)),
    (3, 64, 10, (3 * 64, 64 + caption_height(64), 3, 1)),           # never more columns than tiles
    (7, 32, 2, (2 * 32, 4 * (32 + caption_height(32)), 2, 4)),
])
def test_grid_size(n, tile, columns, size):
    assert grid_size(n, tile, columns) == size


def test_shorten_fits_the_width_and_collapses_spaces():
    face = font(128)
    assert shorten("  two\twords \n", 500, face) == "two words"
    cut = shorten("a caption much too long for a small tile of the sheet", 80, face)
    assert cut.endswith("...") and face.getlength(cut) <= 80 and not cut[:-3].endswith(" ")
    assert "a caption much too long".startswith(cut[:-3])
    assert shorten("", 10, face) == ""


@pytest.mark.parametrize("name, fmt", [("a.png", "PNG"), ("A.PNG", "PNG"), ("x.jpg", "JPEG"), ("x.JPEG", "JPEG"),
                                       ("gs://b/dir.v1/x.webp", "WEBP")])
def test_output_format(name, fmt):
    assert output_format(name) == fmt


@pytest.mark.parametrize("name", ["x.gif", "x", "png", "x.png.tmp"])
def test_other_output_names_are_a_sheet_error(name):
    with pytest.raises(SheetError, match=f"--output {name} must end in .png, .jpg or .webp"):
        output_format(name)


def test_choose_sorts_the_sample_by_caption_then_id():
    everything = items(["d", "c", "b", "a"], ["z", "y", None, "y"], ["same", "same", "first", "last"])
    chosen, note = choose(everything, "ds", "images", None, 10, 0)
    assert chosen.ids.to_pylist() == ["b", "a", "c", "d"] and chosen.contents.to_pylist()[0] == "content of b"
    assert note == " (the dataset holds only 4 images, fewer than --count 10: showing all)"
    _, labeled_note = choose(everything, "ds", "images", "y", 5, 0)
    assert labeled_note == " (the dataset holds only 2 images labeled 'y', fewer than --count 5: showing all)"
    assert choose(everything, "ds", "images", None, 4, 0)[1] == ""


def test_choose_with_nothing_to_show():
    with pytest.raises(SheetError, match="^ds holds no point clouds; preview shows mesh documents"):
        choose(items([], []), "ds", "point clouds", None, 3, 0)
    unlabeled = items(["a"], [None])
    with pytest.raises(SheetError, match="holds no images labeled 'x'; its labels are all empty;"):
        choose(unlabeled, "ds", "images", "x", 3, 0)


def test_choose_names_at_most_eight_labels():
    many = items([str(i) for i in range(12)], [f"label-{i:02}" for i in range(12)])
    with pytest.raises(SheetError, match="'label-07' and 4 more; pass one of them to --label"):
        choose(many, "ds", "images", "nope", 3, 0)


def test_sheet_parser_refuses_small_numbers():
    parser = sheet_parser("finetune-etl sprites", "d", count=36, noun="images")
    assert parser.parse_args(["ds", "--output", "s.png"]).count == 36
    for flag, value in (("--count", "0"), ("--tile", "31"), ("--columns", "x")):
        with pytest.raises(ConfigError, match="is not a whole number of at least"):
            parser.parse_args(["ds", "--output", "s.png", flag, value])


def test_a_mistake_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    for argv in (["sprites", "ds", "--output", "s.png", "--tile", "31"], ["preview", "ds"],
                 ["sprites", "ds", "--output", "s.png", "--split"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("finetune-etl: error: ") and err[0].endswith("lists the options)")


def test_write_sheet_to_a_url_says_what_it_wrote():
    pictures = [Image.new("RGB", (60, 60), (200, 0, 0)) for _ in range(3)]
    url = "memory://contact-sheet/sheet.jpg"
    args = argparse.Namespace(output=url, tile=64, columns=None)
    line = write_sheet(pictures, ["one", "two", "three"], args, "images", " (a note)")
    data = fsspec.filesystem("memory").cat("/contact-sheet/sheet.jpg")
    sheet = Image.open(io.BytesIO(data))
    assert sheet.format == "JPEG" and sheet.size == (128, 2 * (64 + caption_height(64)))
    assert line == (f"finetune-etl: wrote 3 images in 2 columns x 2 rows (128x{sheet.height} px, {len(data):,} bytes) "
                    f"to {url} (a note)")
    red = np.asarray(sheet.convert("RGB"))[32, 32]
    assert red[0] > 150 and red[1] < 60


def test_placeholder_is_a_letterbox_tile_with_its_lines():
    tile = np.asarray(placeholder(["removed", "gs://bucket/a very long path/to/a picture that is gone.jpg"], 100, 104))
    assert tile.shape == (100, 100, 3)
    ink = np.abs(tile.astype(int) - LETTERBOX).sum(axis=2) > 60
    rows = np.flatnonzero(ink.any(axis=1))
    assert rows.size and np.diff(rows).max() > 1 and ink.mean() < 0.2  # two lines of text on the letterbox
    assert np.flatnonzero(ink.any(axis=0)).max() < 100 - 1  # the long line is cut to fit
