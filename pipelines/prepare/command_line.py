"""`finetune-etl prepare`: argparse for our options (everything it does not know goes to Beam), the
option dataclasses built from them, the run, and the counts printed at the end."""
import argparse
import contextlib
import io
import logging
import shlex
import signal
import sys
import threading
import traceback

from pipelines.arguments import OneLineParser
from pipelines.wording import counted
from pipelines.prepare.beam_options import check_beam_args
from pipelines.prepare.config_file import merge_config
from pipelines.prepare.csv_arguments import add_csv_arguments, csv_options
from pipelines.prepare.fetch_arguments import add_fetch_arguments, fetch_option_values
from pipelines.prepare.split_arguments import (add_duplicate_arguments, add_split_arguments, duplicate_options,
                                               split_options)
from pipelines.prepare.inputs import decision_lines
from pipelines.prepare.job import plan_job
from schemas.options import ConfigError, CSVOptions, MediaOptions, OutputOptions, ReadTuning
from transforms.split.assign import LARGE_GROUP
from transforms.split.nodes import keeps_labels_whole
from transforms.write.formats import FORMAT_CHOICES


def _box(text: str) -> tuple:
    width, _, height = text.lower().partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a box like 224x224") from None


def _paths(text: str) -> tuple:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _byte_size(text: str) -> int:
    """'64M', '2G', '1.5G', '4096' -> bytes (K, M, G, T are powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = units.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 4096, 64M or 2G") from None


def _number(group, flag: str, default, metavar: str, text: str) -> None:
    """A numeric option whose type and default come from the option dataclass's default."""
    group.add_argument(flag, type=type(default), default=default, metavar=metavar, help=f"{text} (default: %(default)s)")


def prepare_parser(prog: str = "finetune-etl prepare") -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    io_group.add_argument("--keep-versions", type=int, default=OutputOptions.keep_versions, metavar="N",
                          help="on object stores (gs://, s3://, ...): earlier versions of the dataset kept after "
                               "a re-run publishes a new one (default: %(default)s)")
    io_group.add_argument("--shard-bytes", type=_byte_size, default=OutputOptions.shard_bytes, metavar="SIZE",
                          help="at most about B bytes of Arrow data per shard (default: %(default)s)")
    add_csv_arguments(parser, "reading CSV (Finetuner's CSVOptions)")
    add_split_arguments(parser)
    add_duplicate_arguments(parser)
    media = parser.add_argument_group("media (images and meshes)")
    media.add_argument("--convert-to-blob", action=argparse.BooleanOptionalAction, default=True,
                       help="load and verify images into blob, with mime_type, width, height (default: on)")
    media.add_argument("--create-point-clouds", action=argparse.BooleanOptionalAction, default=True,
                       help="sample meshes into point clouds (default: on)")
    media.add_argument("--fetch-remote", action=argparse.BooleanOptionalAction, default=True,
                       help="also load http(s), gs://, s3:// ... media, not only local files (default: on)")
    _number(media, "--point-cloud-size", MediaOptions.point_cloud_size, "N", "points per mesh")
    _number(media, "--min-points", MediaOptions.min_points, "N",
            "a file of points only (no faces) with fewer distinct points is a too_few_points dead letter; "
            "0: no minimum")
    media.add_argument("--max-media-bytes", type=_byte_size, default=MediaOptions.max_bytes, metavar="SIZE",
                       help="largest media file loaded, e.g. 64M (default: %(default)s bytes)")
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
    media.add_argument("--decode-memory", type=_byte_size, metavar="SIZE",
                       help="most memory one decoder child may take, e.g. 2G; a file that needs more becomes a "
                            "decode_memory dead letter; 0: no cap (default: sized from the machine's memory and "
                            "the number of decoders)")
    media.add_argument("--allow-private-network", action=argparse.BooleanOptionalAction, default=False,
                       help="let http(s) media resolve to private, loopback or link-local addresses")
    add_fetch_arguments(parser)
    tuning = parser.add_argument_group("tuning")
    tuning.add_argument("--range-bytes", type=_byte_size, default=ReadTuning.range_bytes, metavar="SIZE",
                        help="cut large files into byte ranges of about B bytes parsed in parallel (default: %(default)s)")
    tuning.add_argument("--batch-rows", type=int, default=ReadTuning.batch_rows, metavar="N",
                        help="rows per Arrow batch passed between stages (default: %(default)s)")
    tuning.add_argument("--progress-every", type=float, default=30.0, metavar="S",
                        help="when stderr is not a terminal (a scheduler's log), print a progress line every S "
                             "seconds of a local or Dask run; 0: none (default: %(default)s)")
    tuning.add_argument("--max-record-bytes", type=_byte_size, default=ReadTuning.max_record_bytes, metavar="SIZE",
                        help="a CSV record longer than this becomes a record_too_large dead letter and the rest of "
                             "its file is read (default: %(default)s bytes)")
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
    if args.range_bytes < 1024 or args.batch_rows < 1:
        raise ConfigError("--range-bytes must be at least 1024 and --batch-rows at least 1.")
    if not args.progress_every >= 0:
        raise ConfigError(f"--progress-every {args.progress_every} must be 0 (no progress lines) or more seconds.")
    csv = csv_options(args)
    output = OutputOptions(output=args.output, format=args.format, shard_rows=args.shard_rows,
                           shard_bytes=args.shard_bytes, overwrite=args.overwrite,
                           keep_versions=args.keep_versions)
    media = MediaOptions(
        convert_to_blob=args.convert_to_blob, create_point_clouds=args.create_point_clouds,
        fetch_remote=args.fetch_remote, point_cloud_size=args.point_cloud_size, min_points=args.min_points,
        max_bytes=args.max_media_bytes, timeout=args.fetch_timeout, retries=args.fetch_retries,
        concurrency=args.fetch_concurrency,
        allowed_roots=args.allowed_roots, allow_private_network=args.allow_private_network,
        max_image_pixels=args.max_image_pixels, image_size=args.image_size, image_box=args.image_box,
        image_format=args.image_format, image_quality=args.image_quality, decode_timeout=args.decode_timeout,
        decode_memory=args.decode_memory, **fetch_option_values(args))
    tuning = ReadTuning(range_bytes=args.range_bytes, batch_rows=args.batch_rows, max_record_bytes=args.max_record_bytes)
    return csv, output, tuning, media


def run_prepare(argv: list[str]) -> int:
    """`finetune-etl prepare ARGS` -> exit code (0 done, 1 the run failed, 2 a configuration mistake,
    130 stopped by Ctrl-C or SIGTERM)."""
    planned: list = []
    try:
        with _sigterm_as_interrupt():
            return _prepare(argv, planned)
    except KeyboardInterrupt:
        _silence_other_threads()
        from pipelines.prepare.run import discard_run

        for job in planned:  # again: the runner's threads may have written after the run's own clean-up
            discard_run(job)
        print("finetune-etl: stopped before the end; nothing was committed (a dataset already at --output is "
              "unchanged, and this run's staged files were removed).", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a prepare command runs, SIGTERM (a scheduler stopping the job) and Ctrl-C raise KeyboardInterrupt
    in the main thread, so a run's staging is removed on the way out; from that moment the runner's own
    threads, still winding down, may not log or print tracebacks over our one line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def interrupt(signum, frame):
        _silence_other_threads()
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
    previous = {stop: signal.signal(stop, interrupt) for stop in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


class _MainThreadOnly(io.TextIOBase):
    """A text stream that passes on only what the main thread writes (Beam's worker threads print a failed
    bundle's traceback straight to sys.stderr, not through logging)."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        if threading.current_thread() is threading.main_thread():
            return self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _silence_other_threads() -> None:
    """Stop all logging, uncaught-exception reports and other threads' writes to stderr: a stopped run's
    last word is our one line."""
    logging.disable(logging.CRITICAL)
    threading.excepthook = lambda args: None
    if not isinstance(sys.stderr, _MainThreadOnly):
        sys.stderr = _MainThreadOnly(sys.stderr)


def _prepare(argv: list[str], planned: list) -> int:
    """The prepare command; the planned job is appended to `planned` as soon as it exists."""
    from pipelines.prepare.run import run  # Beam loads only when a run starts

    parser = prepare_parser()
    try:
        args, beam_args = parser.parse_known_args(merge_config(argv, parser))
        check_beam_args(beam_args, our_flags(parser))
        csv, output, tuning, media = options_from_args(args)
        job = plan_job(args.input, csv, output, tuning, media=media, split=split_options(args),
                       duplicates=duplicate_options(args), incremental_from=args.incremental_from)
        planned.append(job)
    except ConfigError as exc:
        print(f"finetune-etl: error: {exc}", file=sys.stderr)
        return 2
    for line in decision_lines(job.inputs):
        print(line, file=sys.stderr)
    try:
        manifest = run(job, beam_args, args.progress_every)
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
    """The counts of a finished run; what was reused (--incremental-from); a hint when nothing remote could be
    fetched; when rows became dead letters, how many, the command that lists them, and for media the re-run."""
    counts = manifest["counts"]
    print(f"finetune-etl: wrote {counted(counts.get('documents_written', 0), 'document')} "
          f"({manifest['layout']} layout) to {output}")
    main = ("rows_read", "rows_documented", "candidate_documents", "documents_written", "duplicates_removed",
            "dead_letters", "sampled_out")
    keys = main + tuple(k for k in counts if k not in main)
    width = max(map(len, keys))
    for key in keys:
        print(f"  {key:{width}} {counts.get(key, 0):>12,}")
    if not manifest["reconciliation"]["reconciled"]:
        print("  warning: counts do not reconcile; see manifest.json", file=sys.stderr)
    for line in split_lines(manifest) + duplicate_lines(manifest, output):
        print(line)
    if counts.get("documents_reused"):
        print(f"finetune-etl: reused the media of {counted(counts['documents_reused'], 'document')} from "
              f"{manifest['incremental']['from']} (no fetch, no decode); "
              f"{counted(counts.get('media_files', 0), 'media file')} loaded")
    if counts.get("remote_files") and not counts.get("remote_files_loaded"):
        print(f"finetune-etl: none of the {counted(counts['remote_files'], 'remote media file')} could be fetched; "
              "if this machine cannot reach them, pass --no-fetch-remote to keep their URIs as they are")
    dead = counts.get("dead_letters", 0)
    if dead:
        print(f"finetune-etl: {counted(dead, 'dead letter')} (rows or media that could not be used, each with "
              f"its reason); list them with: finetune-etl errors {shlex.quote(output)}")
    if counts.get("documents_rejected"):  # media that could not be loaded: a re-run reuses what did load
        print(f"finetune-etl: once their causes are fixed, run this same command with --incremental-from "
              f"{shlex.quote(output)} --overwrite: media already loaded are reused, only the failed files (and "
              "new ones) are fetched again")


def duplicate_lines(manifest: dict, output: str) -> list[str]:
    """What was found as duplicates, and where they are listed (nothing when none was)."""
    counts = manifest["counts"]
    exact, near = counts.get("duplicates_removed", 0), counts.get("near_duplicates_found", 0)
    if not exact and not near:
        return []
    parts = [f"{counted(exact, 'exact duplicate')} removed"] if exact else []
    if near:
        dropped = counts.get("near_duplicates_removed", 0)
        clusters = counted(counts.get("near_duplicate_clusters", 0), "near-duplicate cluster")
        parts.append(f"{counted(near, 'document')} in {clusters}"
                     + (f", {dropped:,} of them dropped" if dropped else " (kept, marked by duplicate_group)"))
    return [f"finetune-etl: duplicates: {'; '.join(parts)}; each is listed in {output.rstrip('/')}/duplicates/ "
            f"(see: finetune-etl summary {shlex.quote(output)})"]


def split_lines(manifest: dict) -> list[str]:
    """The splits a run made (documents and share of each, against the fractions asked), and a warning for
    each group too large for the fractions to be met."""
    splits = manifest.get("splits")
    if not splits:
        return []
    total = max(sum(s["documents"] for s in splits["per_split"].values()), 1)
    shares = ", ".join(f"{name} {counted(s['documents'], 'document')} ({s['documents'] / total:.1%}, asked "
                       f"{s['fraction']:.1%})" for name, s in splits["per_split"].items())
    joined = "content or a label" if keeps_labels_whole(manifest["layout"], splits["by"]) else "content"
    lines = [f"finetune-etl: splits: {shares}; documents that share {joined} are in one split"]
    for group in splits["largest_groups"]:
        if group["share"] > LARGE_GROUP:
            lines.append(f"finetune-etl: warning: one group of documents joined by shared content or labels holds "
                         f"{group['share']:.1%} of them ({counted(group['documents'], 'document')}, all in "
                         f"{group['split']}), so the splits can miss their fractions; "
                         "see `largest_groups` in manifest.json")
    return lines


def main(argv: list[str]) -> int:
    """The `prepare` command's entry point (see pipelines.cli)."""
    return run_prepare(argv)
