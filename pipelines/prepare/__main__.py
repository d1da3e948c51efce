"""`python -m pipelines.prepare --input ... --output ...`: the same as `finetune-etl prepare ...`."""
import sys

from pipelines.cli import entry

entry(["prepare", *sys.argv[1:]])
