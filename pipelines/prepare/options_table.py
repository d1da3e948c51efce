"""The README's tables of options and of dead-letter reasons, generated from the command line itself and
from schemas/reasons.py, so they cannot drift apart.

    python -m pipelines.prepare.options_table          # rewrite both tables in README.md
"""
import argparse
import pathlib
import sys

from pipelines.prepare.command_line import prepare_parser
from schemas.reasons import markdown_table as reasons_table

START, END = "<!-- options:start -->", "<!-- options:end -->"
REASONS_START, REASONS_END = "<!-- reasons:start -->", "<!-- reasons:end -->"
README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def markdown(parser: argparse.ArgumentParser) -> str:
    """Every option of `finetune-etl prepare`, grouped as in --help, as a Markdown table."""
    lines = ["| option | default | what it does |", "|---|---|---|"]
    for group in parser._action_groups:
        for action in group._group_actions:
            if not action.option_strings or action.dest == "help":
                continue
            flag = " / ".join(f"`{s}`" for s in action.option_strings)
            if action.metavar:
                flag += f" `{action.metavar}`"
            elif action.choices:
                flag += " `" + "|".join(action.choices) + "`"
            default = "" if action.default in (None, False) or isinstance(action.default, list) else f"`{action.default}`"
            text = (action.help or "").replace("%(default)s", str(action.default)).replace("|", "\\|")
            lines.append(f"| {flag.replace('|', chr(92) + '|')} | {default} | {text} |")
    return "\n".join(lines)


def with_table(readme: str, table: str, start: str = START, end: str = END) -> str:
    """README text -> the same with the text between the markers replaced by `table`."""
    head, _, rest = readme.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n{table}\n{end}{tail}"


def updated_readme(text: str) -> str:
    """README text -> the same with both generated tables up to date."""
    text = with_table(text, markdown(prepare_parser()))
    return with_table(text, reasons_table(), REASONS_START, REASONS_END)


if __name__ == "__main__":
    text = README.read_text()
    for start, end in ((START, END), (REASONS_START, REASONS_END)):
        if start not in text or end not in text:
            sys.exit(f"{README} has no {start} ... {end} markers")
    README.write_text(updated_readme(text))
