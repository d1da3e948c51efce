"""The `finetune-etl` command: dispatches to the prepare job and to the dataset commands, each imported
only when it runs."""
import gc
import importlib
import os
import sys
from typing import Optional


def _command(module: str):
    """The main(argv) -> exit code of `module`, imported only when that command runs."""
    def run(argv: list[str]) -> int:
        return importlib.import_module(module).main(argv)
    return run


COMMANDS = {
    "prepare": _command("pipelines.prepare.command_line"),
    "inspect": _command("pipelines.prepare.inspect"),
    "summary": _command("pipelines.datasets.summary"),
    "sprites": _command("pipelines.datasets.sprites"),
    "preview": _command("pipelines.datasets.preview"),
    "errors": _command("pipelines.datasets.errors"),
}

USAGE = """usage: finetune-etl COMMAND [options]   (finetune-etl COMMAND --help for its options; --version)
  prepare  --input URL --output URL   turn CSV / docarray files into a training dataset
  inspect  --input URL                what prepare would make of each file, without running it
  summary  URL [--json]               what a prepared dataset holds
  sprites  URL --output FILE.png      a contact sheet of its images
  preview  URL --output FILE.png      a grid of its point clouds
  errors   URL [--retry FILE]         its dead letters; --retry writes the failed rows as a new input"""


def main(argv: Optional[list[str]] = None) -> int:
    """`finetune-etl ARGS` -> exit code: runs the command named first."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--version":
        print(f"finetune-etl {version()}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"finetune-etl: error: unknown command {argv[0]!r}; the commands are {', '.join(COMMANDS)} "
              "(`finetune-etl --help` says what each does)", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


def version() -> str:
    """The installed package's version (or the source tree's, when run from a clone without installing)."""
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("finetune-etl")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


STOPPED = 130  # the exit code of a run stopped by Ctrl-C or SIGTERM


def entry(argv: Optional[list[str]] = None) -> None:
    """The console script: exit with main(argv)'s code. A stopped run leaves at once: its runner's worker
    threads may still be inside native code, and waiting for them at interpreter exit can abort.

    Any other run exits normally (atexit handlers, flushed files) but with its objects frozen: the
    interpreter's last full garbage collection would walk every object that Beam, pyarrow and numpy made at
    import (0.3-0.5 s on a 2-core machine, a sixth of a small run), and the process frees them anyway."""
    code = main(argv)
    if code == STOPPED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
