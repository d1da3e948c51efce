"""The README's options table, generated from the command line itself, so the two cannot drift apart.

    python -m pipelines.options_table          # rewrite the table in README.md
"""
import argparse
import pathlib
import sys

from pipelines.cli import prepare_parser

START, END = "<!-- options:start -->", "<!-- options:end -->"
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


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


def with_table(readme: str, table: str) -> str:
    """README text -> the same with the text between the markers replaced by `table`."""
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table}\n{END}{tail}"


if __name__ == "__main__":
    text = README.read_text()
    if START not in text or END not in text:
        sys.exit(f"{README} has no {START} ... {END} markers")
    README.write_text(with_table(text, markdown(prepare_parser())))
