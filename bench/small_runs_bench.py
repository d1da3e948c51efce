"""Benchmark small runs: `finetune-etl prepare` on each bundled example, the command a new user types first.

    python -m bench.small_runs_bench [--runs 5] [--before OTHER_CHECKOUT] [--cases 'seed pairs,labeled images']
                                     [--workdir /tmp/bench-small] [--results bench/RESULTS.md] [--charts bench/charts]

In: the examples in this checkout's `examples/` (seed labeled, pairs, scores and CLIP rows, the Quora labeled
questions, the labeled images and meshes; or the --cases named), each prepared with default options into WORKDIR, `--runs` times,
and `python -c "import apache_beam"` (the floor: Beam's own import). With --before, the same commands run with
that checkout of the project too, interleaved with this one's, so load drifts hit both alike.

Out: a markdown table (median wall and CPU seconds from /usr/bin/time, the largest process's peak memory,
whether the median is within the 2.5 s target, and with --before its medians and the ratio), printed and
appended with the command, date and machine to --results under "Small runs"; with --charts, a bar chart of
the median wall times against the target (small-runs.png).
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys

from bench import report

EXAMPLES = os.path.join(report.REPO, "examples")
TARGET_S = 2.5
CASES = {
    "seed labeled": ["seed-labeled.csv", "--is-labeled"],
    "seed pairs": ["seed-pairs.csv"],
    "seed scores": ["seed-scores.csv"],
    "seed CLIP (images)": ["seed-clip.csv"],
    "Quora labeled, 2,000 rows": ["quora-labeled.csv", "--is-labeled"],
    "labeled images": ["labeled-images.csv", "--is-labeled"],
    "labeled meshes": ["labeled-meshes.csv", "--is-labeled"],
}
FLOOR = "import apache_beam (the floor)"


def command(case: str, out: str) -> list[str]:
    """The command line of a case: the floor, or prepare on its example into `out`."""
    if case == FLOOR:
        return [sys.executable, "-c", "import apache_beam"]
    example, *options = CASES[case]
    return [sys.executable, "-m", "pipelines.cli", "prepare", "--input", os.path.join(EXAMPLES, example), *options,
            "--output", out, "--overwrite"]


def timed(cmd: list[str], code: str) -> dict:
    """One run of `cmd` with the project in folder `code` -> {wall, cpu, peak_mb} from /usr/bin/time."""
    path = os.pathsep.join(filter(None, [code, os.environ.get("PYTHONPATH")]))
    done = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", *cmd], capture_output=True, text=True, cwd=code,
                          env={**os.environ, "PYTHONPATH": path})
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{done.stderr[-2000:]}")
    wall, user, system, peak_kb = done.stderr.strip().splitlines()[-1].split()
    return {"wall": float(wall), "cpu": float(user) + float(system), "peak_mb": int(peak_kb) / 1024}


def measure(cases: list[str], codes: dict[str, str], runs: int, workdir: str) -> dict[tuple[str, str], list[dict]]:
    """The floor and `cases` with every checkout, `runs` rounds, interleaved -> {(case, checkout name): [runs]}."""
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(runs):
        for case in [FLOOR, *cases]:
            for name, code in codes.items():
                out = os.path.join(workdir, name, case.split(",")[0].replace(" ", "-"))
                results.setdefault((case, name), []).append(timed(command(case, out), code))
    return results


def table(results: dict[tuple[str, str], list[dict]], cases: list[str], before: bool) -> list[str]:
    """Markdown rows: median wall, CPU and peak per case (and the checkout before, and the ratio)."""
    def median(case, name, key):
        return statistics.median(r[key] for r in results[(case, name)])

    head = "| case | median wall s | median CPU s | peak MB | within 2.5 s |"
    rule = "|---|---:|---:|---:|---|"
    if before:
        head, rule = head + " before: wall s | before: peak MB | wall / before |", rule + "---:|---:|---:|"
    rows = [head, rule]
    for case in [FLOOR, *cases]:
        wall = median(case, "this", "wall")
        row = (f"| {case} | {wall:.2f} | {median(case, 'this', 'cpu'):.2f} | {median(case, 'this', 'peak_mb'):.0f} | "
               f"{'-' if case == FLOOR else 'yes' if wall <= TARGET_S else 'no'} |")
        if before:
            then = median(case, "before", "wall")
            row += f" {then:.2f} | {median(case, 'before', 'peak_mb'):.0f} | {wall / then:.2f}x |"
        rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", help="another checkout of the project, run side by side")
    parser.add_argument("--cases", help=f"comma-separated, of: {', '.join(CASES)} (default: all)")
    parser.add_argument("--workdir", default="/tmp/bench-small")
    parser.add_argument("--results", default=report.RESULTS)
    parser.add_argument("--charts", help="also draw the wall times as a PNG into this folder (default: no chart)")
    args = parser.parse_args(argv)
    codes = {"this": report.REPO, **({"before": os.path.abspath(args.before)} if args.before else {})}
    cases = args.cases.split(",") if args.cases else list(CASES)
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"no such case: {', '.join(unknown)}")
    results = measure(cases, codes, args.runs, args.workdir)
    lines = [f"## {report.now()} - Small runs: the bundled examples, default options", "",
             f"Command: `python -m bench.small_runs_bench {shlex.join(argv if argv is not None else sys.argv[1:])}`  ",
             f"Machine: {report.machine()}  ",
             f"Each command in its own process, {args.runs} runs, interleaved; wall and CPU from /usr/bin/time, "
             "peak = the largest process (media runs also start decode children).", "",
             *table(results, cases, bool(args.before)), ""]
    if args.charts:
        walls = [statistics.median(r["wall"] for r in results[(case, "this")]) for case in [FLOOR, *cases]]
        chart = report.bar_chart(os.path.join(args.charts, "small-runs.png"), "Small runs, default options: median wall",
                                 [FLOOR, *cases], walls, "seconds", reference=(f"target {TARGET_S} s", TARGET_S))
        lines += [report.chart_link(args.results, chart), ""]
    print("\n".join(lines))
    report.append(args.results, lines)
    print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
