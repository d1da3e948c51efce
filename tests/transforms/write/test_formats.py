"""transforms.write.formats: the one registry of output formats, the --format values it accepts, and the
folders of a dataset."""
import pytest

from schemas.options import ConfigError
from transforms.write.docarray import DocArrayShards
from transforms.write.formats import (DATASET_FOLDERS, DEAD_LETTERS, FORMAT_CHOICES, WRITERS, folder_of,
                                      writers_for)
from transforms.write.parquet import DeadLetterShards, ParquetShards
from transforms.write.webdataset import WebDatasetShards


def test_registry_maps_each_format_name_to_its_writer():
    assert WRITERS == {"parquet": ParquetShards, "docarray": DocArrayShards, "webdataset": WebDatasetShards}
    assert list(WRITERS) == ["parquet", "docarray", "webdataset"]  # registry order is the order of a run's writers
    assert all(name == writer.name for name, writer in WRITERS.items())
    assert DEAD_LETTERS is DeadLetterShards and DEAD_LETTERS.name is None  # written always, not a --format


def test_format_choices_are_the_names_then_the_aliases():
    assert FORMAT_CHOICES == ("parquet", "docarray", "webdataset", "both")


@pytest.mark.parametrize("option, expected", [
    ("both", (ParquetShards, DocArrayShards)),
    ("parquet", (ParquetShards,)),
    ("docarray", (DocArrayShards,)),
    ("webdataset", (WebDatasetShards,)),
])
def test_writers_for(option, expected):
    assert writers_for(option) == expected


@pytest.mark.parametrize("option", ["csv", "Parquet", "", "dead_letters"])
def test_an_unknown_format_is_a_config_error_naming_the_choices(option):
    with pytest.raises(ConfigError) as error:
        writers_for(option)
    assert str(error.value) == f"--format {option!r} is not one of parquet, docarray, webdataset, both."


def test_dataset_folders_are_the_formats_then_the_dead_letters_then_the_duplicates():
    assert DATASET_FOLDERS == ("documents", "docarray", "webdataset", "dead_letters", "duplicates")


def test_folder_of_a_format():
    assert folder_of("parquet") == "documents"
    assert folder_of("docarray") == "docarray"
    assert folder_of("webdataset") == "webdataset"
    with pytest.raises(KeyError):
        folder_of("both")  # an alias has no folder of its own
