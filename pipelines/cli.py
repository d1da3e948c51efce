"""The `finetune-etl` command: dispatches to the prepare job and to the dataset commands, each imported
only when it runs."""
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
    "summary": _command("pipelines.datasets.summary"),
    "sprites": _command("pipelines.datasets.sprites"),
    "preview": _command("pipelines.datasets.preview"),
    "errors": _command("pipelines.datasets.errors"),
}

USAGE = """usage: finetune-etl COMMAND [options]   (finetune-etl COMMAND --help for its options)
  prepare  --input URL --output URL   turn CSV / docarray files into a training dataset
  summary  URL [--json]               what a prepared dataset holds
  sprites  URL --output FILE.png      a contact sheet of its images
  preview  URL --output FILE.png      a grid of its point clouds
  errors   URL [--retry FILE]         its dead letters; --retry writes the failed rows as a new input"""


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


STOPPED = 130  # the exit code of a run stopped by Ctrl-C or SIGTERM


def entry(argv: Optional[list[str]] = None) -> None:
    """The console script: exit with main(argv)'s code. A stopped run leaves at once: its runner's worker
    threads may still be inside native code, and waiting for them at interpreter exit can abort."""
    code = main(argv)
    if code == STOPPED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
