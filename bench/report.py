"""The benchmark report: every figure of bench/results/*.json in one table, and plots.

    python -m bench.report [--results-dir bench/results] [--out bench/results/report.md]

The plots (PNG, beside the report) are latency vs offered QPS (serving), the freshness
distribution (ingest) and recall@10 over a streaming run (shards), drawn from the
series the benchmarks record (SERIES in cluster/results_file.py). A series that is
missing or malformed is named in the report with the reason, and not drawn.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import plots
from cluster.results_file import SERIES, ResultsFile, Series, read_results, read_results_dir

DEFAULT_RESULTS_DIR = Path("bench/results")


@dataclass(frozen=True)
class Plot:
    """One plot of the report: the series it draws, its file name, title and drawing."""

    series: str
    file: str
    title: str
    draw: Callable[[Any, Path, str], None]
    summary: Callable[[Series], str]


def _latency_summary(series: Series) -> str:
    modes = sorted({str(p.get("mode", "all")) for p in series.points})
    return f"{len(series.points)} load levels over {', '.join(modes)}"


def _freshness_summary(series: Series) -> str:
    p50, p90, p99 = np.percentile(np.asarray(series.points, dtype=np.float64), [50, 90, 99])
    return (
        f"{len(series.points):,} pins: p50 {p50:.2f} s, p90 {p90:.2f} s, p99 {p99:.2f} s, "
        f"max {max(series.points):.2f} s"
    )


def _recall_summary(series: Series) -> str:
    recalls = [p["recall_at_10"] for p in series.points]
    return f"{len(recalls)} steps: mean recall@10 {np.mean(recalls):.4f}, min {min(recalls):.4f}"


PLOTS = (
    Plot(
        "latency_vs_offered_qps",
        "latency_vs_qps.png",
        "Latency vs offered QPS",
        plots.latency_vs_qps,
        _latency_summary,
    ),
    Plot(
        "freshness_s",
        "freshness.png",
        "Freshness: produce to searchable",
        plots.freshness,
        _freshness_summary,
    ),
    Plot(
        "streaming_recall_at_10",
        "streaming_recall.png",
        "Recall@10 over a streaming run",
        plots.streaming_recall,
        _recall_summary,
    ),
)


def write_report(results_dir: Path, out: Path) -> str:
    """Write `out` (markdown) and its plots beside it; return the markdown."""
    files = read_results_dir(results_dir)
    lines = [
        "# pinstream benchmark report",
        "",
        f"Written {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} by "
        f"`python -m bench.report` from `{results_dir}/*.json` (`make bench` writes them). "
        "Each figure names the machine it was measured on; timings from a shared machine "
        "are noisy, so compare ratios taken in one run rather than absolute rates.",
        "",
        "## Figures",
        "",
        *_figure_table(files),
        "",
        "## Plots",
    ]
    for plot in PLOTS:
        lines += ["", f"### {plot.title}", "", *_plot(plot, results_dir, files, out.parent)]
    problems = _problems(files)
    if problems:
        lines += ["", "## Set aside", "", *problems]
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text


def _figure_table(files: dict[Path, ResultsFile | str]) -> list[str]:
    rows = [
        "| figure | value | unit | conditions | file | date | machine |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path, results in files.items():
        if isinstance(results, str):
            continue
        machine = _machine(results.machine)
        for f in results.figures:
            conditions = _conditions(f.conditions)
            cells = [f.key, _number(f.value), f.unit, conditions, path.name, f.date, machine]
            rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if len(rows) == 2:
        return ["No results files with figures: run `make bench`."]
    return rows


def _plot(
    plot: Plot, results_dir: Path, files: dict[Path, ResultsFile | str], folder: Path
) -> list[str]:
    spec = SERIES[plot.series]
    meaning = f"{spec.meaning[0].upper()}{spec.meaning[1:]}."
    target = folder / plot.file
    path = results_dir / spec.file
    results = files.get(path) or read_results(path)
    reason = _absent(plot.series, spec.file, results)
    if reason is not None:
        target.unlink(missing_ok=True)  # a plot left from an earlier run would mislead
        return [meaning, "", f"**Not plotted:** {reason}; run `make bench`."]
    assert isinstance(results, ResultsFile)  # _absent checked it
    series = results.series[plot.series]
    plot.draw(series.points, target, plot.title)
    conditions = _conditions(series.conditions)
    return [
        meaning,
        f"From `{spec.file}` ({series.date}; {_machine(results.machine)}): "
        f"{plot.summary(series)}. Conditions: {conditions or 'none stated'}.",
        "",
        f"![{plot.title}]({plot.file})",
    ]


def _absent(key: str, file: str, results: ResultsFile | str) -> str | None:
    """Why the series cannot be plotted, or None."""
    if isinstance(results, str):
        return f"no `{key}` series ({results})"
    if key in results.series:
        return None
    reasons = results.problems.get(key)
    if reasons:
        return f"the `{key}` series is malformed ({'; '.join(reasons)})"
    return f"`{file}` has no `{key}` series (written by an older benchmark?)"


def _problems(files: dict[Path, ResultsFile | str]) -> list[str]:
    out = []
    for path, results in files.items():
        if isinstance(results, str):
            out.append(f"- `{path.name}`: {results}")
            continue
        for reasons in results.problems.values():
            out += [f"- {reason}" for reason in reasons]
    return out


def _machine(machine: dict[str, Any]) -> str:
    parts = []
    if machine.get("cpus"):
        parts.append(f"{machine['cpus']} CPU")
    if machine.get("cpu"):
        parts.append(str(machine["cpu"]))
    parts.append(str(machine["gpu"]) if machine.get("gpu") else "no GPU")
    return ", ".join(parts)


def _conditions(conditions: dict[str, Any]) -> str:
    def shown(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k}={shown(v)}" for k, v in conditions.items())


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=None, help="default: RESULTS_DIR/report.md")
    args = parser.parse_args(argv)
    out = args.out or args.results_dir / "report.md"
    write_report(args.results_dir, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
