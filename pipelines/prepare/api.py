"""`prepare_dataset(...)`: the prepare job from Python (a notebook, a scheduler's task), with the command
line's options as keyword arguments.

    from pipelines import prepare_dataset, load_table
    manifest = prepare_dataset(inputs=["examples/seed-labeled.csv"], output="out/seed", is_labeled=True)
    table = load_table("out/seed")
"""
import sys
from typing import Optional, Sequence, Union

from pipelines.prepare.beam_options import check_beam_args
from pipelines.prepare.command_line import options_from_args, our_flags, prepare_parser
from pipelines.prepare.config_file import config_to_argv
from pipelines.prepare.inputs import decision_lines
from pipelines.prepare.job import plan_job
from pipelines.prepare.split_arguments import duplicate_options, split_options
from schemas.options import ConfigError


def prepare_dataset(inputs: Union[str, Sequence[str]], output: str, beam_args: Optional[Sequence[str]] = None,
                    progress_every: float = 30.0, **options) -> dict:
    """Run the prepare job; returns the manifest it wrote (counts, reconciliation, files).

    inputs: CSV or .docs paths, globs or fsspec URLs; output: the dataset's folder or URL.
    options: any `finetune-etl prepare` option, named with underscores (is_labeled=True, format="parquet",
    image_size=224, ...); beam_args: Beam pipeline options as on the command line (["--runner=..."]).
    Raises ConfigError (one sentence) for a configuration mistake, before any work starts."""
    from pipelines.prepare.run import run  # Beam loads only when a run starts

    parser = prepare_parser("prepare_dataset")
    unknown = sorted(set(options) - set(vars(parser.parse_args([]))) | {"config", "input", "output"} & set(options))
    if unknown:
        raise ConfigError(f"prepare_dataset got unknown or misplaced options: {', '.join(unknown)} (inputs and "
                          "output are their own arguments; other options are named as on the command line, "
                          "with underscores).")
    config = {"input": [inputs] if isinstance(inputs, str) else list(inputs), "output": output, **options}
    ours, _ = config_to_argv(config, parser, "prepare_dataset")
    check_beam_args(list(beam_args or []), our_flags(parser))
    args = parser.parse_args(ours)
    csv, output_options, tuning, media = options_from_args(args)
    job = plan_job(args.input, csv, output_options, tuning, media=media, split=split_options(args),
                   duplicates=duplicate_options(args), incremental_from=args.incremental_from)
    for line in decision_lines(job.inputs):  # what was guessed, as the command line says it
        print(line, file=sys.stderr)
    return run(job, list(beam_args or []), progress_every)
