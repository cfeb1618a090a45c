"""The benchmark report's plots, drawn from results series into PNG files (matplotlib, Agg).

Each function takes a series' points as the results file holds them (see SERIES in
cluster/results_file.py) and writes one PNG. Figures are built without pyplot, so
no global state or display is involved.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SIZE_IN = (7.0, 4.2)
DPI = 110
OP_COLOURS = {"insert": "tab:blue", "delete": "tab:red", "reinsert": "tab:green"}


def latency_vs_qps(points: list[dict[str, Any]], path: Path, title: str) -> None:
    """p50 (solid) and p99 (dashed) latency against offered QPS, one colour per mode."""
    figure, ax = _figure(title)
    by_mode: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        by_mode[str(point.get("mode", "all"))].append(point)
    for number, (mode, rows) in enumerate(sorted(by_mode.items())):
        rows.sort(key=lambda p: p["offered_qps"])
        offered = [p["offered_qps"] for p in rows]
        colour = f"C{number}"
        ax.plot(offered, [p["p50_ms"] for p in rows], "o-", color=colour, label=f"{mode} p50")
        ax.plot(offered, [p["p99_ms"] for p in rows], "s--", color=colour, label=f"{mode} p99")
    ax.set_xlabel("offered load (queries/s, open loop)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    _save(figure, path)


def freshness(samples: list[float], path: Path, title: str) -> None:
    """Histogram of produce -> searchable seconds, with its CDF and the p50 / p99 marked."""
    figure, ax = _figure(title)
    values = np.sort(np.asarray(samples, dtype=np.float64))
    ax.hist(values, bins=40, color="tab:blue", alpha=0.6)
    ax.set_xlabel("seconds from produce to searchable")
    ax.set_ylabel("pins")
    cdf = ax.twinx()
    cdf.plot(values, np.arange(1, len(values) + 1) / len(values), color="black", linewidth=1)
    cdf.set_ylabel("fraction of pins (CDF)")
    cdf.set_ylim(0, 1.02)
    for quantile, style in ((50, ":"), (99, "--")):
        at = float(np.percentile(values, quantile))
        ax.axvline(at, color="tab:red", linestyle=style, label=f"p{quantile} {at:.2f} s")
    ax.legend(loc="center right", fontsize="small")
    _save(figure, path)


def streaming_recall(points: list[dict[str, Any]], path: Path, title: str) -> None:
    """recall@10 after each step (coloured by operation), with the live vectors behind it."""
    figure, ax = _figure(title)
    steps = [p["step"] for p in points]
    live = ax.twinx()
    live.bar(steps, [p["live"] for p in points], color="grey", alpha=0.2, width=0.8)
    live.set_ylabel("live vectors (bars)")
    ax.set_zorder(live.get_zorder() + 1)  # recall drawn over the bars
    ax.patch.set_visible(False)
    recalls = [p["recall_at_10"] for p in points]
    ax.plot(steps, recalls, "-", color="black", linewidth=1)
    for op in sorted({str(p.get("op", "step")) for p in points}):
        chosen = [p for p in points if str(p.get("op", "step")) == op]
        ax.scatter(
            [p["step"] for p in chosen],
            [p["recall_at_10"] for p in chosen],
            color=OP_COLOURS.get(op, "tab:purple"),
            label=op,
            zorder=3,
        )
    ax.set_ylim(min(0.9, min(recalls) - 0.02), 1.005)
    ax.set_xlabel("step of the streaming run")
    ax.set_ylabel("recall@10 vs exact search")
    ax.legend(loc="lower left", fontsize="small")
    _save(figure, path)


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=SIZE_IN, dpi=DPI, layout="tight")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return figure, ax


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
