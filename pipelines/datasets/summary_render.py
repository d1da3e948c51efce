"""The summary dict of pipelines.datasets.summary -> tables on a terminal (rich; plain text when not a TTY)."""
import os
import re
from typing import Optional

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

BAR_WIDTH = 30
# Characters a terminal would act on instead of showing: C0/C1 controls (ESC starts ANSI sequences), DEL,
# and the Unicode line separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown_text(value: Optional[str]) -> Text:
    """Text from the data (a label, a path, a reason) as a cell that shows exactly what it holds: control
    characters as escapes (\\x1b, \\n) and rich markup such as [red] as plain text."""
    return Text(_CONTROL.sub(lambda m: repr(m.group())[1:-1], "-" if value is None else str(value)))


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def _n(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def shown_path(url: Optional[str]) -> str:
    """A local path inside the current folder as a relative path (shorter, and the same on every machine);
    anything else as it is."""
    if not url or "://" in url or not os.path.isabs(url):
        return url or "-"
    relative = os.path.relpath(url)
    return url if relative.startswith("..") else relative


def shown_reason(reason: str) -> str:
    """A reason with the paths inside the current folder made relative, as shown_path does."""
    return re.sub(r"(?<![^\s'\"(=])" + re.escape(os.path.join(os.getcwd(), "")), "", reason)


def _stats(stats: Optional[dict]) -> list[str]:
    return [_n(None if stats is None else stats[k]) for k in ("min", "median", "max")]


def _mark(holds: bool) -> Text:
    return Text("yes", style="green") if holds else Text("NO", style="bold red")


def overview(s: dict) -> Table:
    table = _table(f"Dataset {shown_path(s['url'])}", "", "")
    table.show_header = False
    modalities = ", ".join(s["modalities"] or []) or "-"
    verdict = s["reconciliation"]["reconciled"] and all(c["holds"] for c in s["checks"])
    for key, value in (("run", s["run_id"]), ("committed", s["committed_at"]), ("tool", s["tool"]),
                       ("layout", f"{s['layout']}{' (CLIP text-image pairs)' if s['clip'] else ''}"),
                       ("column modalities", modalities), ("documents", _n(s["documents"]["total"])),
                       ("dead letters", _n(s["dead_letters"]["total"])),
                       ("counts add up", _mark(verdict))):
        table.add_row(key, value)
    table.columns[1].justify = "left"
    return table


def documents(s: dict) -> Table:
    table = _table("Documents by modality", "modality", "documents")
    for modality, n in s["documents"]["by_modality"].items():
        table.add_row(modality, _n(n))
    for kinds, n in s["documents"]["pairs"].items():
        table.add_row(f"  pair of {kinds}", _n(n))
    return table


def labels(s: dict) -> Table:
    table = _table(f"Labels: {_n(s['labels']['count'])}, documents per label min / median / max: "
                   + " / ".join(_stats(s["labels"]["per_label"])), "largest labels", "documents")
    for item in s["labels"]["largest"]:
        table.add_row(shown_text(item["label"]), _n(item["documents"]))
    return table


def scores(s: dict) -> Table:
    sc = s["scores"]
    table = _table(f"Scores: {_n(sc['count'])} pairs, min / median / max: " + " / ".join(_stats(sc)),
                   "score", "pairs", "")
    top = max(b["documents"] for b in sc["histogram"]) or 1
    for b in sc["histogram"]:
        closing = "]" if b["high"] == 1.0 else ")"
        table.add_row(f"[{b['low']:.1f}, {b['high']:.1f}{closing}", _n(b["documents"]),
                      "█" * round(BAR_WIDTH * b["documents"] / top))
    table.columns[2].justify = "left"
    return table


def images(s: dict) -> Table:
    im = s["images"]
    mime = ", ".join(f"{m} {_n(n)}" for m, n in im["mime_types"].items()) or "none loaded"
    table = _table(f"Images: {_n(im['count'])} ({mime})", "pixels", "min", "median", "max")
    table.add_row("width", *_stats(im["width"]))
    table.add_row("height", *_stats(im["height"]))
    return table


def meshes(s: dict) -> Table:
    table = _table("Meshes", "meshes", "points per cloud")
    table.add_row(_n(s["meshes"]["count"]), _n(s["meshes"]["points_per_cloud"]) if s["meshes"]["points_per_cloud"] else "not sampled")
    return table


def dead_letters(s: dict) -> Table:
    dl = s["dead_letters"]
    by_stage = ", ".join(f"{stage} {_n(n)}" for stage, n in dl["by_stage"].items())
    table = _table(f"Dead letters: {_n(dl['total'])} ({by_stage})", "stage", "reason class", "count", "example")
    for group in dl["top"]:
        example = group["example"]
        where = f"{shown_path(example['source_file'])}:{example['source_row']}"
        table.add_row(group["stage"], group["reason_class"], _n(group["count"]),
                      shown_text(f"{where}  {shown_reason(example['reason'])}"))
    table.columns[1].justify = table.columns[3].justify = "left"
    return table


def inputs(s: dict) -> Table:
    table = _table("Inputs", "url", "bytes", "delimiter", "encoding", "header", "fields")
    for i in s["inputs"]:
        table.add_row(shown_path(i["url"]), _n(i["size"]), repr(i["delimiter"]) if i["delimiter"] else "-",
                      i["encoding"] or "-", "yes" if i["header"] else "no", _n(i["fields"]))
    return table


def options(s: dict) -> Table:
    table = _table("Options", "group", "options")
    for group, values in s["options"].items():
        text = "  ".join(f"{k}={shown_path(v) if k == 'output' else _option(v)}" for k, v in values.items() if v is not None)
        table.add_row(group, text)
    table.columns[1].justify = "left"
    return table


def _option(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def shards(s: dict) -> Table:
    table = _table("Shards", "kind", "files", "rows", "bytes", "rows in Parquet footers")
    for kind, shard in s["shards"].items():
        table.add_row(kind, _n(shard["files"]), _n(shard["rows"]), _n(shard["bytes"]), _n(shard["rows_in_files"]))
    return table


def reconciliation(s: dict) -> Table:
    table = _table("Reconciliation", "equation", "left", "right", "holds")
    for e in s["reconciliation"]["equations"]:
        table.add_row(e["equation"], _n(e["left"]), _n(e["right"]), _mark(e["holds"]))
    for c in s["checks"]:
        table.add_row(c["check"], _n(c["expected"]), _n(c["found"]), _mark(c["holds"]))
    return table


def splits(s: dict) -> Table:
    sp = s["splits"]
    table = _table("Splits", "split", "documents", "labels")
    for name, split in sp["per_split"].items():
        table.add_row(name, _n(split["documents"]), _n(split["labels"]))
    table.add_row("in two splits", f"{_n(sp['content_in_two_splits'])} texts or URIs",
                  f"{_n(sp['labels_in_two_splits'])}" + ("" if sp["labels_kept_whole"] else " (spread by --split-by document)"))
    if sp.get("duplicate_groups_in_two_splits") is not None:
        table.add_row("in two splits", _count(sp["duplicate_groups_in_two_splits"], "near-duplicate cluster"), "")
    for group in sp["largest_groups"][:3]:
        table.add_row(f"largest group ({group['split']})", _n(group["documents"]), f"{group['share']:.1%} of the documents")
    return table


def duplicates(s: dict) -> Table:
    d = s["duplicates"]
    near = f"{_count(d['near_clusters'], 'near-duplicate cluster')} of {_count(d['near_found'], 'document')}"
    table = _table(f"Duplicates: {_n(d['exact_removed'])} exact removed; {near}, {_n(d['near_removed'])} removed",
                   "largest clusters: kept id", "kind", "documents", "similarity", "examples")
    for cluster in d["largest_clusters"]:
        low, high = (f"{cluster['similarity'][k]:.3f}" for k in ("min", "max"))
        examples = Text("\n").join(shown_text(_example(e, cluster["kept_id"])) for e in cluster["examples"])
        table.add_row(shown_text(cluster["kept_id"]), cluster["kind"], _n(cluster["size"]),
                      low if low == high else f"{low} - {high}", examples)
    table.columns[1].justify = table.columns[4].justify = "left"
    return table


def _count(n: int, noun: str) -> str:
    return f"{_n(n)} {noun}{'' if n == 1 else 's'}"


def _example(example: dict, kept_id: str) -> str:
    """A cluster's example -> its text (else its uri), marked when it is the kept document or was removed."""
    shown = example["text"] if example["text"] is not None else shown_path(example["uri"])
    mark = " (kept)" if example["id"] == kept_id else " (removed)" if example["removed"] else ""
    return shown + mark


def render(s: dict, console: Optional[Console] = None) -> None:
    """Print a summary dict as tables: overview, documents, labels, scores, images, meshes, splits, duplicates,
    dead letters, inputs, options, shards, reconciliation (sections with nothing to show are left out:
    duplicates when none were recorded)."""
    console = console or Console(highlight=False, markup=False)  # labels and paths are shown as they are
    sections = [overview, documents]
    sections += [labels] if s["labels"] else []
    sections += [scores] if s["scores"] else []
    sections += [images] if s["images"] else []
    sections += [meshes] if s["meshes"] else []
    sections += [splits] if s.get("splits") else []
    found = s.get("duplicates") or {}  # null for datasets written before duplicates were recorded
    sections += [duplicates] if found.get("exact_removed") or found.get("near_clusters") else []
    sections += [dead_letters] if s["dead_letters"]["total"] else []
    sections += [inputs, options, shards, reconciliation]
    for section in sections:
        table = section(s)
        title, table.title = table.title, None  # printed on its own line: a table would wrap it to its width
        console.print(title, style="bold")
        console.print(table)
        console.print()
