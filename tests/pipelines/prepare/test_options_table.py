"""pipelines.prepare.options_table: the README's options table, made from the prepare parser."""
import argparse

from pipelines.prepare.command_line import prepare_parser
from pipelines.prepare.options_table import END, START, markdown, updated_readme, with_table


def rows(table: str) -> list[list[str]]:
    """A Markdown table's body rows -> their cells (escaped pipes kept inside a cell)."""
    body = table.splitlines()[2:]
    return [[cell.strip() for cell in line.replace("\\|", "\0").strip("|").split("|")] for line in body]


def test_every_prepare_option_is_listed_once_in_parser_order():
    parser = prepare_parser()
    table = markdown(parser)
    assert table.splitlines()[:2] == ["| option | default | what it does |", "|---|---|---|"]
    listed = [cell[0].replace("\0", "|") for cell in rows(table)]
    expected = [a for g in parser._action_groups for a in g._group_actions if a.option_strings and a.dest != "help"]
    assert len(listed) == len(expected) > 30
    for cell, action in zip(listed, expected):
        assert all(f"`{flag}`" in cell for flag in action.option_strings), (cell, action.option_strings)
    assert "`--help`" not in table and all(len(r) == 3 for r in rows(table))


def test_cells_show_metavar_choices_defaults_and_escaped_pipes():
    parser = argparse.ArgumentParser()
    parser.add_argument("positional")
    parser.add_argument("--size", "-s", type=int, default=7, metavar="N", help="keep N (default: %(default)s)")
    parser.add_argument("--mode", choices=("a", "b"), default="a", help="a | b")
    parser.add_argument("--flag", action="store_true", help="a switch")
    parser.add_argument("--many", action="append", help="repeatable")
    assert markdown(parser).splitlines()[2:] == [
        "| `--size` / `-s` `N` | `7` | keep N (default: 7) |",
        "| `--mode` `a\\|b` | `a` | a \\| b |",
        "| `--flag` |  | a switch |",
        "| `--many` |  | repeatable |",
    ]


def test_with_table_replaces_only_the_text_between_the_markers():
    readme = f"# Title\n\nbefore\n{START}\nold | table\nmore old\n{END}\nafter {START[:4]}\n"
    assert with_table(readme, "| new |") == f"# Title\n\nbefore\n{START}\n| new |\n{END}\nafter {START[:4]}\n"
    assert with_table(with_table(readme, "| new |"), "| new |") == with_table(readme, "| new |")


def test_with_table_takes_other_markers():
    readme = "a <!-- x:start -->old<!-- x:end --> b <!-- options:start -->kept<!-- options:end -->"
    assert with_table(readme, "new", "<!-- x:start -->", "<!-- x:end -->") == (
        "a <!-- x:start -->\nnew\n<!-- x:end --> b <!-- options:start -->kept<!-- options:end -->")


def test_updated_readme_fills_both_tables_and_is_stable():
    readme = f"intro\n{START}\n{END}\nmiddle\n<!-- reasons:start -->\n<!-- reasons:end -->\nend\n"
    updated = updated_readme(readme)
    assert updated.startswith(f"intro\n{START}\n{markdown(prepare_parser())}\n{END}\nmiddle\n<!-- reasons:start -->\n|")
    assert updated.endswith("<!-- reasons:end -->\nend\n") and updated_readme(updated) == updated
