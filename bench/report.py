"""What every benchmark report shares: the machine line, appending a section to the results file, PNG charts.

    machine() -> "nproc=2, memory 23.5 GiB, load average 1.20 0.90 0.70, Linux-..., Python ..., apache-beam ..."
    append(path, lines)            appends a markdown section (creating the file with its title)
    bar_chart(path, title, ...)    / line_chart(path, title, ...)  write a PNG with matplotlib's Agg backend
"""
from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "RESULTS.md")
CHARTS = os.path.join(REPO, "bench", "charts")
TITLE = "# Benchmark results\n\nAppended by the scripts in bench/ (see each one's docstring)."


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    """One line naming the machine, its load right now and the versions that matter."""
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("apache-beam", "pyarrow"))
    return (f"nproc={os.cpu_count()}, memory {psutil.virtual_memory().total / 2**30:.1f} GiB, "
            f"load average {load_average()} (1/5/15 min, 2 cores shared with other jobs), "
            f"{platform.platform()}, Python {platform.python_version()}, {versions}")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def append(path: str, lines: list[str]) -> None:
    """Append a markdown section to the results file at `path` (created with the title when missing)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    head = [] if os.path.exists(path) else [TITLE]
    with open(path, "a") as handle:
        handle.write("\n".join(head + [""] + lines) + "\n")


def ratio(base: float, value: float) -> str:
    """base / value as "1.23x", or "-" when value is 0 (a run too short to measure)."""
    return f"{base / value:.2f}x" if value > 0 else "-"


def chart_link(results_path: str, chart_path: str) -> str:
    """A markdown image link to the chart, relative to the results file."""
    rel = os.path.relpath(chart_path, os.path.dirname(os.path.abspath(results_path)))
    return f"![{os.path.basename(chart_path)}]({rel})"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path: str, title: str, labels: list[str], values: list[float], unit: str,
              reference: tuple[str, float] | None = None) -> str:
    """Horizontal bars of `values` (one per label), with an optional dashed reference line; writes a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(labels) + 1.6))
    bars = ax.barh(labels[::-1], values[::-1], color="#4878a8")
    ax.bar_label(bars, labels=[f"{v:,.0f}" if v >= 100 else f"{v:,.2f}" for v in values[::-1]], padding=3, fontsize=8)
    if reference:
        ax.axvline(reference[1], color="#c44e52", linestyle="--", label=reference[0])
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.15)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def line_chart(path: str, title: str, x: list[float], left: dict[str, list[float]], left_unit: str,
               right: dict[str, list[float]], right_unit: str, x_unit: str) -> str:
    """Series against x on log-log axes: `left` on the left axis (solid), `right` on the right (dashed)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, ys in left.items():
        ax.plot(x, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x_unit)
    ax.set_ylabel(left_unit)
    twin = ax.twinx()
    for name, ys in right.items():
        twin.plot(x, ys, marker="s", linestyle="--", label=name)
    twin.set_ylabel(right_unit)
    twin.set_ylim(bottom=0, top=max([max(v) for v in right.values()] + [1]) * 1.3)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
