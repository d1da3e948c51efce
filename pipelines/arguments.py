"""The argument parser every `finetune-etl` command uses: a mistake on the command line is one line."""
import argparse

from schemas.options import ConfigError


class OneLineParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors raise ConfigError (the commands print it as one line
    `finetune-etl: error: ...` and exit 2) instead of printing the usage and exiting."""

    def error(self, message: str):
        raise ConfigError(f"{message} (`{self.prog} --help` lists the options)")
