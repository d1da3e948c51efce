"""pipelines.prepare.csv_arguments: prepare and inspect share the CSV options; --delimiter / --sep."""
import subprocess
import sys

import pytest

from conftest import ROOT
from pipelines import load_table
from pipelines.prepare.command_line import prepare_parser
from pipelines.prepare.csv_arguments import csv_options
from pipelines.prepare.inspect import inspect_parser
from schemas.options import ConfigError


def csv_flags(parser) -> set:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_prepare_and_inspect_take_the_same_csv_options():
    shared = {"--layout", "--is-labeled", "--dialect", "--delimiter", "--sep", "--encoding", "--header",
              "--no-header", "--modalities", "--size", "--sampling-rate", "--score-scale"}
    assert shared <= csv_flags(prepare_parser()) and shared <= csv_flags(inspect_parser())


@pytest.mark.parametrize("written,delimiter", [("tab", "\t"), ("\\t", "\t"), (";", ";"), ("pipe", "|"),
                                               ("Semicolon", ";"), ("space", " "), (":", ":")])
def test_a_delimiter_is_a_character_or_its_name(written, delimiter):
    args = prepare_parser().parse_args(["--sep", written])
    assert csv_options(args).delimiter == delimiter


@pytest.mark.parametrize("argv,message", [
    (["--delimiter", "ab"], "must be one ASCII character"),
    (["--delimiter", '"'], "must be one ASCII character"),
    (["--delimiter", ";", "--dialect", "excel-tab"], "contradicts --dialect excel-tab"),
])
def test_a_delimiter_that_cannot_be_one_is_a_configuration_mistake(argv, message):
    with pytest.raises(ConfigError, match=message):
        csv_options(prepare_parser().parse_args(argv))


def test_a_known_delimiter_is_used_without_sniffing(tmp_path):
    """A file whose rows hold commas inside fields separated by pipes: sniffing could pick either."""
    data = tmp_path / "pipes.csv"
    data.write_text("red, ripe apple|fruit\ngreen, sour apple|fruit\na carrot, long|vegetable\n")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "pipelines.prepare", "--input", str(data), "--is-labeled",
                             "--delimiter", "pipe", "--output", str(out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    table = load_table(str(out))
    assert sorted(zip(table.column("text").to_pylist(), table.column("label").to_pylist())) == [
        ("a carrot, long", "vegetable"), ("green, sour apple", "fruit"), ("red, ripe apple", "fruit")]
