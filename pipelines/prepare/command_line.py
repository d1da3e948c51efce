"""`finetune-etl prepare`: argparse for our options (everything it does not know goes to Beam), the
option dataclasses built from them, the run, and the counts printed at the end."""
import argparse
import contextlib
import signal
import sys
import threading
import traceback

from pipelines.prepare.beam_options import check_beam_args
from pipelines.prepare.config_file import merge_config
from pipelines.prepare.job import plan_job
from schemas.options import DIALECTS, LAYOUTS, ConfigError, CSVOptions, MediaOptions, OutputOptions, ReadTuning
from transforms.write.formats import FORMAT_CHOICES


def _box(text: str) -> tuple:
    width, _, height = text.lower().partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a box like 224x224") from None


def _paths(text: str) -> tuple:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _modalities(text: str) -> tuple:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _number(group, flag: str, default, metavar: str, text: str) -> None:
    """A numeric option whose type and default come from the option dataclass's default."""
    group.add_argument(flag, type=type(default), default=default, metavar=metavar, help=f"{text} (default: %(default)s)")


def prepare_parser(prog: str = "finetune-etl prepare") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Turn CSV files into a labeled, sharded training dataset (Parquet and docarray). "
                    "Arguments not listed here are Beam pipeline options, e.g. --runner, --direct_num_workers.",
    )
    io_group = parser.add_argument_group("inputs and output")
    parser.add_argument("--config", metavar="FILE",
                        help="YAML job config (see configs/); flags on the command line override it")
    io_group.add_argument("--input", action="append", metavar="URL",
                          help="CSV or docarray .docs file, glob or fsspec URL (gs://, s3://, http(s)://, memory://); repeatable")
    io_group.add_argument("--output", metavar="URL",
                          help="folder (local or fsspec URL) that receives the dataset; {date} and {run_id} are filled in")
    io_group.add_argument("--format", choices=FORMAT_CHOICES, default="both", help="files to write (default: both)")
    io_group.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=False, help="replace a complete dataset already at --output")
    io_group.add_argument("--shard-rows", type=int, default=OutputOptions.shard_rows, metavar="N",
                          help="at most N documents per shard (default: %(default)s)")
    io_group.add_argument("--shard-bytes", type=int, default=OutputOptions.shard_bytes, metavar="B",
                          help="at most about B bytes of Arrow data per shard (default: %(default)s)")
    csv_group = parser.add_argument_group("reading CSV (Finetuner's CSVOptions)")
    csv_group.add_argument("--layout", choices=LAYOUTS, default="auto",
                           help="labeled (item,label), pairs (query,document or CLIP text,image), scores (a,b,score), "
                                "values (every cell a document), or auto from the columns (default)")
    csv_group.add_argument("--is-labeled", action=argparse.BooleanOptionalAction, default=False, help="Finetuner's spelling of --layout labeled")
    csv_group.add_argument("--dialect", choices=DIALECTS, default="auto", help="CSV dialect; auto sniffs each file (default)")
    csv_group.add_argument("--encoding", default="utf-8", help="text encoding of the files (default: utf-8)")
    csv_group.add_argument("--header", action=argparse.BooleanOptionalAction, default=False, help="skip the first row of every file")
    csv_group.add_argument("--modalities", type=_modalities, metavar="M1,M2",
                           help="force each content column's modality: text, image or mesh")
    csv_group.add_argument("--size", type=int, metavar="N", help="keep at most N rows (a deterministic sample)")
    csv_group.add_argument("--sampling-rate", type=float, metavar="R", help="keep each row with probability R, by its content hash")
    csv_group.add_argument("--score-scale", type=float, metavar="S", help="divide scores by S (5 for STS-B) before the [0, 1] check")
    media = parser.add_argument_group("media (images and meshes)")
    media.add_argument("--convert-to-blob", action=argparse.BooleanOptionalAction, default=True,
                       help="load and verify images into blob, with mime_type, width, height (default: on)")
    media.add_argument("--create-point-clouds", action=argparse.BooleanOptionalAction, default=True,
                       help="sample meshes into point clouds (default: on)")
    media.add_argument("--fetch-remote", action=argparse.BooleanOptionalAction, default=True,
                       help="also load http(s), gs://, s3:// ... media, not only local files (default: on)")
    _number(media, "--point-cloud-size", MediaOptions.point_cloud_size, "N", "points per mesh")
    _number(media, "--max-media-bytes", MediaOptions.max_bytes, "B", "largest media file loaded")
    _number(media, "--max-image-pixels", MediaOptions.max_image_pixels, "P",
            "larger images are rejected as decompression bombs")
    media.add_argument("--image-size", type=int, metavar="N", help="resize images so the shorter side is N pixels")
    media.add_argument("--image-box", type=_box, metavar="WxH", help="resize images to fit in a W x H box")
    media.add_argument("--image-format", choices=("jpeg", "png", "webp"), help="re-encode images in this format")
    _number(media, "--image-quality", MediaOptions.image_quality, "Q", "jpeg/webp quality when re-encoding")
    _number(media, "--fetch-timeout", MediaOptions.timeout, "S", "seconds per request")
    _number(media, "--fetch-retries", MediaOptions.retries, "N",
            "retries of a transient failure: connection error, timeout, 429, 5xx")
    _number(media, "--fetch-concurrency", MediaOptions.concurrency, "N", "files fetched at once per worker")
    media.add_argument("--allowed-roots", type=_paths, metavar="DIR[,DIR]",
                       help="local media paths must lie inside one of these folders (default: any)")
    media.add_argument("--decode-timeout", type=float, default=MediaOptions.decode_timeout, metavar="S",
                       help="seconds one image or mesh may take to decode, in a child process; a file that hangs "
                            "or crashes it becomes a dead letter; 0 decodes in the worker, unguarded (default: %(default)s)")
    media.add_argument("--allow-private-network", action=argparse.BooleanOptionalAction, default=False,
                       help="let http(s) media resolve to private, loopback or link-local addresses")
    tuning = parser.add_argument_group("tuning")
    tuning.add_argument("--range-bytes", type=int, default=ReadTuning.range_bytes, metavar="B",
                        help="cut large files into byte ranges of about B bytes parsed in parallel (default: %(default)s)")
    tuning.add_argument("--batch-rows", type=int, default=ReadTuning.batch_rows, metavar="N",
                        help="rows per Arrow batch passed between stages (default: %(default)s)")
    return parser


def our_flags(parser: argparse.ArgumentParser) -> list[str]:
    """Every long option of the parser (`--x`; switches also as `--no-x`), from its public defaults."""
    flags = []
    for dest, default in vars(parser.parse_args([])).items():
        flag = "--" + dest.replace("_", "-")
        flags += [flag, "--no-" + flag[2:]] if isinstance(default, bool) else [flag]
    return flags


def options_from_args(args: argparse.Namespace) -> tuple[CSVOptions, OutputOptions, ReadTuning, MediaOptions]:
    """Parsed arguments -> the option dataclasses (ConfigError on contradictions)."""
    if not args.input or not args.output:
        raise ConfigError("--input and --output are required (on the command line or in the --config file).")
    layout = args.layout
    if args.is_labeled:
        if layout not in ("auto", "labeled"):
            raise ConfigError(f"--is-labeled contradicts --layout {layout}; pass one of them.")
        layout = "labeled"
    if args.range_bytes < 1024 or args.batch_rows < 1:
        raise ConfigError("--range-bytes must be at least 1024 and --batch-rows at least 1.")
    csv = CSVOptions(dialect=args.dialect, encoding=args.encoding, header=args.header, layout=layout,
                     modalities=args.modalities, size=args.size, sampling_rate=args.sampling_rate,
                     score_scale=args.score_scale)
    output = OutputOptions(output=args.output, format=args.format, shard_rows=args.shard_rows,
                           shard_bytes=args.shard_bytes, overwrite=args.overwrite)
    media = MediaOptions(
        convert_to_blob=args.convert_to_blob, create_point_clouds=args.create_point_clouds,
        fetch_remote=args.fetch_remote, point_cloud_size=args.point_cloud_size, max_bytes=args.max_media_bytes,
        timeout=args.fetch_timeout, retries=args.fetch_retries, concurrency=args.fetch_concurrency,
        allowed_roots=args.allowed_roots, allow_private_network=args.allow_private_network,
        max_image_pixels=args.max_image_pixels, image_size=args.image_size, image_box=args.image_box,
        image_format=args.image_format, image_quality=args.image_quality, decode_timeout=args.decode_timeout)
    return csv, output, ReadTuning(range_bytes=args.range_bytes, batch_rows=args.batch_rows), media


def run_prepare(argv: list[str]) -> int:
    """`finetune-etl prepare ARGS` -> exit code (0 done, 1 the run failed, 2 a configuration mistake,
    130 stopped by Ctrl-C or SIGTERM)."""
    planned: list = []
    try:
        with _sigterm_as_interrupt():
            return _prepare(argv, planned)
    except KeyboardInterrupt:
        from pipelines.prepare.run import discard_staging

        for job in planned:  # again: the runner's threads may have written after the run's own clean-up
            discard_staging(job.staging)
        print("finetune-etl: stopped before the end; nothing was committed (a dataset already at --output is "
              "unchanged, and this run's staged files were removed).", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a prepare command runs, SIGTERM (a scheduler stopping the job) raises KeyboardInterrupt as Ctrl-C
    does, so a run's staging is removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _prepare(argv: list[str], planned: list) -> int:
    """The prepare command; the planned job is appended to `planned` as soon as it exists."""
    from pipelines.prepare.run import run  # Beam loads only when a run starts

    parser = prepare_parser()
    try:
        args, beam_args = parser.parse_known_args(merge_config(argv, parser))
        check_beam_args(beam_args, our_flags(parser))
        csv, output, tuning, media = options_from_args(args)
        job = plan_job(args.input, csv, output, tuning, media=media)
        planned.append(job)
    except ConfigError as exc:
        print(f"finetune-etl: error: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = run(job, beam_args)
    except ConfigError as exc:  # the output was taken by another run meanwhile: nothing was published
        print(f"finetune-etl: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a runner or worker failure: the details above, then one sentence for the user
        traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"finetune-etl: error: the run failed ({type(exc).__name__}: {first_line}); nothing was committed "
              f"to {job.output.output} (a dataset already there is unchanged). See the details above, fix the cause "
              "and run the same command again.", file=sys.stderr)
        return 1
    print_summary(manifest, job.output.output)
    return 0


def print_summary(manifest: dict, output: str) -> None:
    counts = manifest["counts"]
    print(f"finetune-etl: wrote {counts.get('documents_written', 0)} documents "
          f"({manifest['layout']} layout) to {output}")
    main = ("rows_read", "rows_documented", "candidate_documents", "documents_written", "duplicates_removed",
            "dead_letters", "sampled_out")
    for key in main + tuple(k for k in counts if k not in main):
        print(f"  {key:32} {counts.get(key, 0):>12,}")
    if not manifest["reconciliation"]["reconciled"]:
        print("  warning: counts do not reconcile; see manifest.json", file=sys.stderr)


def main(argv: list[str]) -> int:
    """The `prepare` command's entry point (see pipelines.cli)."""
    return run_prepare(argv)
