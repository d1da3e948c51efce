"""`python -m pipelines.prepare --input ... --output ...`: the same as `finetune-etl prepare ...`."""
import sys

from pipelines.prepare.command_line import run_prepare

sys.exit(run_prepare(sys.argv[1:]))
