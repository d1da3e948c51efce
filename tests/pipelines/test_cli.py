"""pipelines.cli: the `finetune-etl` command dispatches to its commands and imports each only when it runs."""
import subprocess
import sys
from pathlib import Path

import pytest

import pipelines
from pipelines.cli import COMMANDS, USAGE, main


def test_no_command_prints_usage_and_exits_2(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == USAGE


@pytest.mark.parametrize("argv", [["nope"], ["Prepare"], ["--input", "x.csv"]])
def test_an_unknown_command_is_one_line_naming_the_commands(capsys, argv):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        f"finetune-etl: error: unknown command {argv[0]!r}; the commands are {', '.join(COMMANDS)} "
        "(`finetune-etl --help` says what each does)\n")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_0(capsys, flag):
    assert main([flag]) == 0
    assert capsys.readouterr().out.startswith("usage: finetune-etl COMMAND")


def test_version_is_the_installed_packages(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"finetune-etl {version('finetune-etl')}\n"


def test_usage_names_every_command():
    listed = [line.split()[0] for line in USAGE.splitlines()[1:]]
    assert listed == list(COMMANDS)


def test_prepare_reaches_the_prepare_command(tmp_path, capsys):
    assert main(["prepare", "--input", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("finetune-etl: error: ") and "missing.csv" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_dataset_command_gets_its_own_arguments(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "none")]) == 2
    assert "holds no complete dataset" in capsys.readouterr().err


def test_commands_are_imported_only_when_they_run():
    """Importing the CLI (what `finetune-etl --help` costs) loads neither Beam nor any command module."""
    script = ("import sys, pipelines.cli\n"
              "loaded = [m for m in ('apache_beam', 'pipelines.prepare.command_line',\n"
              "          'pipelines.datasets.summary', 'pipelines.datasets.sprites', 'pipelines.datasets.preview',\n"
              "          'pipelines.datasets.errors') if m in sys.modules]\n"
              "print(loaded)\n"
              "pipelines.cli.main(['--help'])\n"
              "print('apache_beam' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == "[]" and lines[-1] == "False" and lines[1].startswith("usage: finetune-etl")


def test_a_default_run_imports_neither_docarray_nor_torch(tmp_path):
    """The default run writes `.docs` shards from Arrow without docarray, which imports torch (seconds) whenever
    torch is installed, as it is with the test extra; media libraries stay out of a text run too, and so does
    IPython, which Beam imports to ask whether it runs in a notebook."""
    script = ("import sys\n"
              "from pipelines.cli import main\n"
              f"assert main(['prepare', '--input', 'examples/seed-pairs.csv', '--output', {str(tmp_path / 'out')!r}]) == 0\n"
              "print([m for m in ('docarray', 'torch', 'PIL', 'trimesh', 'IPython') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.splitlines()[-1] == "[]", result.stdout
    assert list((tmp_path / "out" / "docarray").glob("*.docs")), "the default run wrote no docarray shards"


def test_a_run_of_plain_meshes_never_imports_trimesh(tmp_path):
    """The bundled meshes (OFF, a Blender OBJ with normals, a PLY with texture coordinates, STL) take the fast
    readers, so neither the run (decoding in-process with --decode-timeout 0) nor the point-cloud module imports
    trimesh, scipy or networkx (about a second); the clouds are the ones the trimesh path gives."""
    script = ("import sys\n"
              "from pipelines.cli import main\n"
              f"assert main(['prepare', '--input', 'examples/labeled-meshes.csv', '--is-labeled', '--decode-timeout', "
              f"'0', '--output', {str(tmp_path / 'out')!r}]) == 0\n"
              "print([m for m in ('trimesh', 'scipy', 'networkx') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.splitlines()[-1] == "[]", result.stdout
    table = pipelines.load_table(str(tmp_path / "out"))
    assert table.num_rows == 6 and table["point_cloud"].null_count == 0
