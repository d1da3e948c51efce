"""Check the Beam pipeline options the command line passes through, so a typo stops the run."""
import difflib
import importlib
import logging

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from schemas.options import ConfigError


def check_beam_args(beam_args: list[str], our_flags: list[str]) -> PipelineOptions:
    """Beam tokens -> PipelineOptions; ConfigError naming the first option neither Beam nor we know
    (Beam itself only logs such options and drops them)."""
    options = PipelineOptions(beam_args)
    _import_runner_options(options.view_as(StandardOptions).runner)
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_log.level
    beam_log.setLevel(logging.ERROR)  # we report unknown options ourselves, once
    try:
        known = set(options.get_all_options(retain_unknown_options=False))
        unknown = [k for k in options.get_all_options(retain_unknown_options=True) if k not in known]
    finally:
        beam_log.setLevel(level)
    if unknown:
        flag = "--" + unknown[0]
        close = difflib.get_close_matches(flag.replace("_", "-"), our_flags, n=1)
        hint = f"; did you mean {close[0]}?" if close else "; see finetune-etl prepare --help"
        raise ConfigError(f"unknown option {flag}{hint}")
    return options


def _import_runner_options(runner: str | None) -> None:
    """A runner given as a dotted path may define its own options class (e.g. DaskOptions): import it."""
    if runner and "." in runner:
        try:
            importlib.import_module(runner.rsplit(".", 1)[0])
        except ImportError:
            raise ConfigError(f"--runner {runner!r} cannot be imported.") from None
