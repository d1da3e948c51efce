"""The two baselines the ETL is measured against; bench.text_bench runs each as its own process.

    python -m bench.baselines pyarrow --input FILE --output DIR
    python -m bench.baselines loop    --input FILE --output DIR --layout pairs|labeled|scores

In: a headerless, excel-dialect CSV (as written by bench.make_csv).
Out: DIR/documents/part-00000.parquet, and one JSON line on stdout: {"rows_in": ..., "documents": ...}.

* ``pyarrow``: the near-physical limit -- pyarrow.csv.read_csv (multi-threaded C++ parser) and
  pyarrow.parquet.write_table of the raw columns; no grouping, no dedup, no per-row Python.
* ``loop``: a straightforward single-process loader in the style of Jina Finetuner's CSV loader:
  csv.reader, one small dict per document, a dict query -> label so every document of a query
  gets the query text as label, one document per distinct (text, label), all kept in memory
  (as a DocumentArray would be), then pyarrow.Table.from_pylist + pyarrow.parquet.write_table.
"""
from __future__ import annotations

import argparse
import csv
import json
import os

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def _out_path(out_dir: str) -> str:
    os.makedirs(os.path.join(out_dir, "documents"), exist_ok=True)
    return os.path.join(out_dir, "documents", "part-00000.parquet")


def run_pyarrow(path: str, out_dir: str) -> dict:
    """CSV -> Arrow table -> one Parquet file, columns f0, f1[, f2] as pyarrow infers them."""
    table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=True))
    pq.write_table(table, _out_path(out_dir))
    return {"rows_in": table.num_rows, "documents": table.num_rows}


def _documents(path: str, layout: str, source: str) -> tuple[int, list[dict]]:
    """Finetuner-style parse: (rows read, list of document dicts)."""
    docs: list[dict] = []
    seen: set[tuple[str, str]] = set()
    queries: dict[str, str] = {}  # query text -> label of its group
    rows = 0
    with open(path, newline="", encoding="utf-8") as f:
        for rows, row in enumerate(csv.reader(f, dialect="excel"), start=1):
            if layout == "scores":
                docs.append({
                    "id": str(len(docs)), "modality": "pair", "score": float(row[2]),
                    "chunks": [{"modality": "text", "text": row[0]}, {"modality": "text", "text": row[1]}],
                    "source_file": source, "source_row": rows - 1,
                })
                continue
            if layout == "pairs":
                query, document = row
                label = queries.setdefault(query, query)
                items = ((query, label), (document, label))
            else:  # labeled
                items = ((row[0], row[1]),)
            for text, label in items:
                if (text, label) in seen:
                    continue
                seen.add((text, label))
                docs.append({"id": str(len(docs)), "modality": "text", "text": text, "label": label,
                             "source_file": source, "source_row": rows - 1})
    return rows, docs


def run_loop(path: str, out_dir: str, layout: str) -> dict:
    rows, docs = _documents(path, layout, os.path.basename(path))
    pq.write_table(pa.Table.from_pylist(docs), _out_path(out_dir))
    return {"rows_in": rows, "documents": len(docs)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("which", choices=("pyarrow", "loop"))
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--layout", choices=("pairs", "labeled", "scores"), default="pairs")
    args = ap.parse_args(argv)
    if args.which == "pyarrow":
        result = run_pyarrow(args.input, args.output)
    else:
        result = run_loop(args.input, args.output, args.layout)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
