"""The one registry of output formats: the writer, commit and the dataset readers all look formats up here.

Adding a format: one new module with a ShardWriter subclass, and its class in WRITERS below.
"""
from schemas.options import ConfigError
from transforms.write.docarray import DocArrayShards
from transforms.write.parquet import DeadLetterShards, DuplicateShards, ParquetShards
from transforms.write.shard_writer import ShardWriter
from transforms.write.webdataset import WebDatasetShards

WRITERS: dict[str, type[ShardWriter]] = {w.name: w for w in (ParquetShards, DocArrayShards, WebDatasetShards)}
ALIASES = {"both": ("parquet", "docarray")}
FORMAT_CHOICES = (*WRITERS, *ALIASES)  # what --format accepts
DEAD_LETTERS = DeadLetterShards
DUPLICATES = DuplicateShards
# The folders of a dataset, in manifest order: each document format's, then the dead letters', then the
# duplicates'.
DATASET_FOLDERS = (*(w.folder for w in WRITERS.values()), DEAD_LETTERS.folder, DUPLICATES.folder)


def writers_for(format_option: str) -> tuple[type[ShardWriter], ...]:
    """--format's value (a name or an alias) -> the writers of the run, in registry order."""
    names = ALIASES.get(format_option, (format_option,))
    unknown = [n for n in names if n not in WRITERS]
    if unknown:
        raise ConfigError(f"--format {format_option!r} is not one of {', '.join(FORMAT_CHOICES)}.")
    return tuple(w for name, w in WRITERS.items() if name in names)


def folder_of(format_name: str) -> str:
    """The dataset folder of a document format ('parquet' -> 'documents')."""
    return WRITERS[format_name].folder
