"""The CSV options of `finetune-etl prepare` and `finetune-etl inspect`: one definition, so both commands
read files the same way."""
import argparse

from schemas.options import DIALECTS, HEADERS, LAYOUTS, ConfigError, CSVOptions, header_choice

DELIMITERS_BY_NAME = {"comma": ",", "tab": "\t", "semicolon": ";", "pipe": "|", "space": " "}
# How inspect names a delimiter (a space is shown as ' ').
DELIMITER_NAMES = {character: name for name, character in DELIMITERS_BY_NAME.items() if name != "space"}


def _delimiter(text: str) -> str:
    """'tab', '\\t', ';', 'pipe', ... -> the one delimiter character."""
    return {**DELIMITERS_BY_NAME, "\\t": "\t"}.get(text.lower(), text)


def _modalities(text: str) -> tuple:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def add_csv_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """Add the CSV reading options (layout, dialect, delimiter, encoding, header, modalities, sampling)."""
    group = parser.add_argument_group(title)
    group.add_argument("--layout", choices=LAYOUTS, default="auto",
                       help="labeled (item,label), pairs (query,document or CLIP text,image), scores (a,b,score), "
                            "values (every cell a document), or auto from the columns (default)")
    group.add_argument("--is-labeled", action=argparse.BooleanOptionalAction, default=False,
                       help="Finetuner's spelling of --layout labeled")
    group.add_argument("--dialect", choices=DIALECTS, default="auto", help="CSV dialect; auto sniffs each file (default)")
    group.add_argument("--delimiter", "--sep", type=_delimiter, metavar="D",
                       help="the field delimiter, for files you know: a character, or tab, comma, semicolon, pipe "
                            "(default: the dialect's, or sniffed per file)")
    group.add_argument("--encoding", default="utf-8", help="text encoding of the files (default: utf-8)")
    group.add_argument("--header", nargs="?", const="yes", default="auto", type=header_choice, choices=HEADERS,
                       help="whether each file's first row names its columns (and is skipped): auto decides per "
                            "file and says so (default); a bare --header is yes")
    group.add_argument("--no-header", dest="header", action="store_const", const="no", help="the same as --header no")
    group.add_argument("--modalities", type=_modalities, metavar="M1,M2",
                       help="force each content column's modality: text, image or mesh")
    group.add_argument("--size", type=int, metavar="N", help="keep at most N rows (a deterministic sample)")
    group.add_argument("--sampling-rate", type=float, metavar="R", help="keep each row with probability R, by its content hash")
    group.add_argument("--score-scale", type=float, metavar="S", help="divide scores by S (5 for STS-B) before the [0, 1] check")


def csv_options(args: argparse.Namespace) -> CSVOptions:
    """Parsed CSV arguments -> CSVOptions (ConfigError on contradictions)."""
    layout = args.layout
    if args.is_labeled:
        if layout not in ("auto", "labeled"):
            raise ConfigError(f"--is-labeled contradicts --layout {layout}; pass one of them.")
        layout = "labeled"
    return CSVOptions(dialect=args.dialect, delimiter=args.delimiter, encoding=args.encoding, header=args.header,
                      layout=layout, modalities=args.modalities, size=args.size, sampling_rate=args.sampling_rate,
                      score_scale=args.score_scale)
