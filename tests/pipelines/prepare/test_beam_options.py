"""pipelines.prepare.beam_options: Beam flags pass through; a flag nobody knows stops the run with a hint."""
import logging

import pytest
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

from pipelines.prepare.beam_options import check_beam_args
from pipelines.prepare.command_line import prepare_parser
from schemas.options import ConfigError

OUR_FLAGS = [flag for action in prepare_parser()._actions for flag in action.option_strings]


def test_beam_flags_are_accepted_and_parsed():
    options = check_beam_args(["--runner=DirectRunner", "--direct_num_workers", "2", "--job_name=x"], OUR_FLAGS)
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert options.view_as(DirectOptions).direct_num_workers == 2


def test_no_beam_flags_at_all():
    assert check_beam_args([], OUR_FLAGS).view_as(StandardOptions).runner is None


@pytest.mark.parametrize("args, message", [
    (["--is_labeled"], "unknown option --is_labeled; did you mean --is-labeled?"),       # Finetuner's spelling
    (["--shard_rows", "3"], "unknown option --shard_rows; did you mean --shard-rows?"),
    (["--runner=DirectRunner", "--xyzzy"], "unknown option --xyzzy; see finetune-etl prepare --help"),
    (["--direct_num_wokers=2"], "unknown option --direct_num_wokers; see finetune-etl prepare --help"),
])
def test_unknown_options_are_config_errors_with_a_hint(args, message):
    with pytest.raises(ConfigError) as caught:
        check_beam_args(args, OUR_FLAGS)
    assert str(caught.value) == message


def test_a_misspelled_flag_with_dashes_gets_a_hint():
    """Beam reads dashes as underscores; the hint still names our flag as it is spelled."""
    with pytest.raises(ConfigError, match=r"cloud.sise; did you mean --point-cloud-size\?$"):
        check_beam_args(["--point-cloud-sise=5"], OUR_FLAGS)


def test_only_the_first_unknown_option_is_named():
    with pytest.raises(ConfigError, match="--first_bad;"):
        check_beam_args(["--first_bad", "--second_bad"], OUR_FLAGS)


def test_a_runner_path_that_cannot_be_imported():
    with pytest.raises(ConfigError, match=r"--runner 'no_such_package\.Runner' cannot be imported\."):
        check_beam_args(["--runner", "no_such_package.Runner"], OUR_FLAGS)


def test_a_runner_path_brings_its_own_options():
    runner = "apache_beam.runners.dask.dask_runner.DaskRunner"
    options = check_beam_args([f"--runner={runner}", "--dask_npartitions=3"], OUR_FLAGS)
    assert options.get_all_options()["npartitions"] == 3


def test_beam_does_not_log_the_unknown_option_and_its_log_level_is_restored(caplog):
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    before = beam_log.level
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError):
        check_beam_args(["--nonsense_flag=1"], OUR_FLAGS)
    assert not [r for r in caplog.records if r.name.startswith("apache_beam.options")]
    assert beam_log.level == before
