"""configs/ job files, --config merging, and the Dockerfile's base image."""
import re
from pathlib import Path

import pytest
import yaml

from pipelines.prepare.beam_options import check_beam_args
from pipelines.prepare.command_line import options_from_args, prepare_parser
from pipelines.prepare.config_file import merge_config
from schemas.options import ConfigError

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def parse(argv):
    parser = prepare_parser()
    args, beam_args = parser.parse_known_args(merge_config(argv, parser))
    check_beam_args(beam_args, [f for a in parser._actions for f in a.option_strings])
    return args, beam_args


def test_there_is_a_config_for_each_runner():
    assert {p.stem for p in CONFIGS} >= {"local", "dask", "dataflow", "flink"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_config_parses_and_validates(config):
    """Each file is YAML whose keys are known options, whose values our option classes accept, and whose
    Beam section holds options Beam knows."""
    args, beam_args = parse(["--config", str(config)])
    csv, output, tuning, media = options_from_args(args)
    assert args.input and output.output
    assert any(a.startswith("--runner=") for a in beam_args)


def test_command_line_overrides_the_config(tmp_path):
    args, beam_args = parse(["--config", str(ROOT / "configs" / "local.yaml"), "--input", "other.csv",
                             "--format", "parquet", "--direct_num_workers=1"])
    assert args.input == ["other.csv"]
    assert args.format == "parquet"
    assert args.output == "out/local/{date}"  # from the file, not overridden
    assert beam_args[-1] == "--direct_num_workers=1"


def test_the_bundled_local_config_fixes_no_layout():
    args, _ = parse(["--config", str(ROOT / "configs" / "local.yaml")])
    assert args.layout == "auto" and not args.is_labeled


@pytest.mark.parametrize("in_file,flags,layout", [
    ({"is-labeled": True}, ["--layout", "pairs"], "pairs"),
    ({"is-labeled": True}, ["--no-is-labeled"], "auto"),
    ({"layout": "scores"}, ["--is-labeled"], "labeled"),
    ({"layout": "scores"}, ["--layout=pairs"], "pairs"),
    ({"is-labeled": True}, [], "labeled"),
])
def test_a_flag_overrides_the_configs_other_spelling_of_the_same_setting(tmp_path, in_file, flags, layout):
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({"input": ["a.csv"], "output": "out", **in_file}))
    args, _ = parse(["--config", str(config), *flags])
    csv, *_ = options_from_args(args)
    assert csv.layout == layout


def test_a_size_flag_overrides_the_configs_box(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({"input": ["a.csv"], "output": "out", "image-box": "64x64"}))
    args, _ = parse(["--config", str(config), "--image-size", "32"])
    *_, media = options_from_args(args)
    assert media.image_size == 32 and media.image_box is None


def test_unknown_key_names_the_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"input": ["a.csv"], "output": "out", "shard_rowz": 5}))
    with pytest.raises(ConfigError, match="unknown key 'shard_rowz'"):
        parse(["--config", str(config)])


def test_unknown_beam_option_is_an_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"input": ["a.csv"], "output": "out", "beam": {"runnr": "DirectRunner"}}))
    with pytest.raises(ConfigError, match="--runnr"):
        parse(["--config", str(config)])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse(["--config", str(tmp_path / "nope.yaml")])


def test_dockerfile_base_image_matches_pinned_beam_and_python():
    """The worker image's base is Beam's SDK image for the Beam version setup.py pins and the Python
    version the project runs on."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    setup = (ROOT / "setup.py").read_text()
    beam_version = re.search(r'BEAM_VERSION = "([\d.]+)"', setup).group(1)
    assert 'apache-beam[dask]=={BEAM_VERSION}' in setup or f"apache-beam[dask]=={beam_version}" in setup
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.M).group(1)
    python = re.search(r'python_requires=">=3\.(\d+)', setup)
    assert base == f"apache/beam_python3.11_sdk:{beam_version}", base
    assert python and int(python.group(1)) <= 11


def test_dockerfile_installs_the_project_packages():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("schemas", "transforms", "pipelines"):
        assert re.search(rf"^COPY {package} ", dockerfile, re.M), package
    assert "pip install" in dockerfile and "setup.py" in dockerfile
