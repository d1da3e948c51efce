"""`finetune-etl inspect`: what `finetune-etl prepare` would make of its inputs, without running it.

For each CSV file: the dialect, encoding, header decision, layout and column modalities with the reasons,
an estimate of its rows, and its first rows as the documents (or dead letters) they would become, by the
same planning (pipelines.prepare.inputs) and layout rules (transforms.layout) a run uses, on the file's
first 64 KiB. No Beam, no output.
"""
import sys

import pyarrow as pa

from pipelines.arguments import OneLineParser
from pipelines.prepare.inputs import (HEAD_BYTES, FileDecision, FileHead, decide, describe, expand_inputs,
                                      is_docarray, quoted, read_heads, shown)
from schemas.inputs import InputFile
from pipelines.prepare.csv_arguments import DELIMITER_NAMES, add_csv_arguments, csv_options
from schemas.options import ConfigError, CSVOptions
from transforms.layout import LayoutSpec, apply_layout
from transforms.read.csv_parse import field_count_reason, field_names
from transforms.uris import common_folder



def inspect_parser() -> OneLineParser:
    """prepare's --input and CSV options (the same spellings and defaults), and --rows."""
    parser = OneLineParser(
        prog="finetune-etl inspect",
        description="Show what `finetune-etl prepare` would make of CSV files, without running it: per file the "
                    "dialect, encoding, header, layout and column modalities with the reasons, an estimate of its "
                    "rows and its first rows as documents. Takes prepare's --input and CSV options.")
    parser.add_argument("--input", action="append", required=True, metavar="URL",
                        help="CSV or docarray .docs file, glob or fsspec URL; repeatable")
    parser.add_argument("--rows", type=int, default=5, metavar="N", help="rows shown as documents per file (default: 5)")
    add_csv_arguments(parser, "reading CSV (as finetune-etl prepare)")
    return parser


def main(argv: list[str]) -> int:
    """`finetune-etl inspect ARGS` -> exit code (0: the files can be prepared together, 2: a configuration
    mistake or files that cannot, said in one line on stderr after what each file looks like)."""
    try:
        args = inspect_parser().parse_args(argv)
        if args.rows < 0:
            raise ConfigError(f"--rows {args.rows} must be 0 or more.")
        options = csv_options(args)
        found = expand_inputs(args.input)
        heads = read_heads([(url, size) for url, size in found if not is_docarray(url)], options)
        try:
            plan, problem = decide(heads, options), None
            planned = list(zip(heads, plan.files, plan.decisions))
        except ConfigError as exc:  # the files disagree: show each as it would be read on its own
            plan, problem = None, exc
            planned = [(head, *_alone(head, options)) for head in heads]
    except ConfigError as exc:
        print(f"finetune-etl: error: {exc}", file=sys.stderr)
        return 2
    for head, file, decision in planned:
        print("\n".join(file_report(head, file, decision, options, args.rows)) + "\n")
    for url, size in found:
        if is_docarray(url):
            print(f"{shown(url)}\n  docarray DocList ({size:,} bytes), read as it is\n")
    if problem is not None:
        print(f"finetune-etl: error: {problem}", file=sys.stderr)
        return 2
    if plan is not None and heads:
        rows = sum(h.estimated_rows for h in heads)
        print(f"together: {describe(plan.layout, plan.modalities)}, about {rows:,} rows from "
              f"{len(heads)} CSV file{'s' if len(heads) != 1 else ''}")
    return 0


def _alone(head: FileHead, options: CSVOptions) -> tuple:
    """(InputFile, FileDecision) of a file planned on its own."""
    plan = decide([head], options)
    return plan.files[0], plan.decisions[0]


def file_report(head: FileHead, file: InputFile, decision: FileDecision, options: CSVOptions, rows: int) -> list[str]:
    """The lines that describe one CSV file: how it is read, why, and its first rows as documents."""
    dialect = file.dialect
    spaced = " and a space after it" if dialect.skipinitialspace else ""
    how = "sniffed" if options.dialect == "auto" else f"--dialect {options.dialect}"
    if head.size <= HEAD_BYTES:
        estimate = f"{len(head.rows):,} (the whole file, {head.size:,} bytes)"
    else:
        estimate = f"about {head.estimated_rows:,} (from the first {HEAD_BYTES // 1024} KiB of {head.size:,} bytes)"
    if head.first_row:
        header = (f"{'yes' if file.header else 'no'}: first row \"{head.first_row}\" is "
                  f"{'a header' if file.header else 'data'} ({decision.header_why})")
    else:
        header = f"no: {decision.header_why}"
    lines = [
        shown(file.url),
        f"  dialect    {DELIMITER_NAMES.get(dialect.delimiter, repr(dialect.delimiter))}-separated{spaced} ({how})",
        f"  encoding   {file.encoding}",
        f"  header     {header}",
        f"  layout     {describe(decision.layout, decision.modalities)}: {decision.layout_why}"
        + (f"; {decision.other_layout}" if decision.other_layout else ""),
        f"  columns    {_columns(decision.layout, decision.modalities, file.expected_fields)}",
        f"  rows       {estimate}",
    ]
    spec = LayoutSpec(decision.layout, decision.modalities, options.score_scale,
                      modalities_forced=options.modalities is not None, media_root=common_folder([file.url]))
    shown_rows = preview(head, file, spec, rows)
    lines += [f"  {'documents' if i == 0 else '':9}  {line}" for i, line in enumerate(shown_rows)]
    return lines


def _columns(layout: str, modalities: tuple, fields: int) -> str:
    """'1 text, 2 label': what each column of a row holds."""
    if layout == "pairs" and len(set(modalities)) == 1:
        names = [f"query ({modalities[0]})", f"document ({modalities[1]})"]
    else:
        names = {"labeled": [*modalities, "label"], "scores": [*modalities, "score"]}.get(layout, list(modalities))
    return ", ".join(f"{i + 1} {name}" for i, name in enumerate(names[:fields]))


def preview(head: FileHead, file: InputFile, spec: LayoutSpec, limit: int) -> list[str]:
    """The first `limit` rows of a file's head, each as 'line N: ' and the documents or the dead letter it
    becomes (the layout stage's own rules; media is not loaded)."""
    numbered = head.records[1 if head.header else 0:][:limit]
    fitting = [(line, fields) for line, fields in numbered if len(fields) == file.expected_fields]
    shown_by_line = {line: [f"dead letter (read, field_count): "
                            f"{field_count_reason(len(fields), file.expected_fields, ','.join(fields), file.dialect)}"]
                     for line, fields in numbered if len(fields) != file.expected_fields}
    if fitting:
        columns = {name: [fields[i] for _, fields in fitting] for i, name in enumerate(field_names(file.expected_fields))}
        batch = pa.RecordBatch.from_pydict(dict(columns, source_file=[file.url] * len(fitting),
                                                source_row=[line for line, _ in fitting]),
                                           schema=_row_schema(file.expected_fields))
        docs, dead, _ = apply_layout(batch, spec)
        for doc in [] if docs is None else docs.to_pylist():
            shown_by_line.setdefault(doc["source_row"], []).append(_document(doc))
        for letter in dead:
            shown_by_line.setdefault(letter.source_row, []).append(
                f"dead letter ({letter.stage}, {letter.reason_class}): {letter.reason}")
    return [f"line {line}: " + "; ".join(shown_by_line[line]) for line, _ in numbered]


def _row_schema(fields: int) -> pa.Schema:
    return pa.schema([(name, pa.string()) for name in field_names(fields)]
                     + [("source_file", pa.string()), ("source_row", pa.int64())])


def _document(doc: dict) -> str:
    """A candidate document in one phrase: 'text "Hello!" label "greeting-english"'."""
    if doc["chunks"] is not None:
        text = "pair [" + ", ".join(_content(c) for c in doc["chunks"]) + "]"
    else:
        text = _content(doc)
    if doc["label"] is not None:
        text += f" label {quoted(doc['label'])}"
    if doc["score"] is not None:
        text += f" score {doc['score']:g}"
    return text


def _content(part: dict) -> str:
    """A document's or chunk's modality and content: 'text "..."' or 'image /path/a.jpg'."""
    return f"text {quoted(part['text'])}" if part["text"] is not None else f"{part['modality']} {shown(part['uri'])}"
