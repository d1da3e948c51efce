"""How the commands that read a prepared dataset (summary, errors, sprites, preview) report one that
cannot be read: one line on stderr and an exit code, no traceback."""
import sys

from pipelines.datasets.load import DatasetChanging

DATASET_ERRORS = (FileNotFoundError, DatasetChanging)


def fail(message: str, code: int = 2) -> int:
    """Print `finetune-etl: error: message` on stderr; returns the exit code."""
    print(f"finetune-etl: error: {message}", file=sys.stderr)
    return code


def dataset_error(error: Exception) -> int:
    """One of DATASET_ERRORS -> its line on stderr and exit code: 2 for no complete dataset, 1 for one that
    kept changing while it was read."""
    if isinstance(error, FileNotFoundError):
        return fail(f"{error} Pass the --output folder of a finished `finetune-etl prepare` run.")
    return fail(str(error), 1)
