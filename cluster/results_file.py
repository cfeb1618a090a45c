"""One benchmark results file under bench/results/: its figures and raw series, checked.

Every file `make bench` writes looks like::

    {
      "schema": "pinstream.bench/1",
      "benchmark": "shards",
      "date": "2026-05-09T07:35:25Z",
      "machine": {"cpu": "...", "cpus": 16, "gpu": "NVIDIA A10G"},
      "figures": {
        "search_qps_per_replica": {
          "value": 1234.5, "unit": "queries/s",
          "conditions": {"index": "IVF65536,PQ32", "dim": 384, "vectors": 10000000, ...}
        },
        "resident_bytes_per_vector": [
          {"value": 790.0, "unit": "bytes", "conditions": {"index": "IVF1024,PQ32", ...}},
          {"value": 2262.8, "unit": "bytes", "conditions": {"index": "IVF256,Flat", ...}}
        ]
      },
      "series": {
        "freshness_s": {"conditions": {"rate_per_s": 50.0}, "points": [0.84, 1.02, ...]}
      }
    }

A figure is one measurement (a mapping) or the same measurement under several
conditions (a list of mappings, e.g. one per index; the first is the primary one).
A series is the raw data behind a plot: a list of numbers, or a list of mappings whose
`SERIES` fields are numbers. Other keys are allowed and ignored. A malformed figure or
series is set aside with its reason; the rest of the file is still used.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "pinstream.bench/1"


@dataclass(frozen=True)
class SeriesSpec:
    """A raw series a benchmark records for the report: its file, key and point fields."""

    file: str
    key: str
    meaning: str
    fields: tuple[str, ...] = ()  # () = the points are plain numbers


SERIES: dict[str, SeriesSpec] = {
    spec.key: spec
    for spec in (
        SeriesSpec(
            "serving.json",
            "latency_vs_offered_qps",
            "open-loop HTTP load at a sweep of offered rates: achieved QPS and p50 / p99 "
            "latency (ms, from each request's scheduled time) per Serve mode",
            ("offered_qps", "qps", "p50_ms", "p99_ms"),
        ),
        SeriesSpec(
            "ingest.json",
            "freshness_s",
            "seconds from each pin event's event_time (set when produced) to the moment a "
            "shard replica applied it and could return it",
        ),
        SeriesSpec(
            "shards.json",
            "streaming_recall_at_10",
            "recall@10 against exact search over the live set after each step of a clustered "
            "streaming run (inserts, deletes, re-inserts)",
            ("step", "live", "recall_at_10"),
        ),
    )
}


@dataclass(frozen=True)
class Figure:
    """One measured figure with where it came from."""

    key: str
    value: float
    unit: str
    conditions: dict[str, Any]
    source: Path
    date: str
    gpu: str | None

    def cite(self) -> str:
        """`file (date)`, for the plan's output."""
        return f"{self.source} ({self.date})"


@dataclass(frozen=True)
class Series:
    """One raw series: numbers, or mappings with numeric fields, and its conditions."""

    key: str
    points: list[Any]
    conditions: dict[str, Any]
    source: Path
    date: str


@dataclass(frozen=True)
class ResultsFile:
    """A results file's well-formed figures and series, and what was set aside and why."""

    path: Path
    benchmark: str
    date: str
    machine: dict[str, Any]
    figures: list[Figure]
    series: dict[str, Series]
    problems: dict[str, list[str]] = field(default_factory=dict)  # key -> reasons

    def figures_named(self, key: str) -> list[Figure]:
        """Every well-formed measurement of `key`, the primary one first."""
        return [f for f in self.figures if f.key == key]


def read_results(path: Path) -> ResultsFile | str:
    """The checked results file, or the reason it cannot be used at all."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path} does not exist"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})"
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else None
        return f"{path} has schema {found!r}, expected {SCHEMA!r} (keys: docs/scaling.md)"
    date = document.get("date")
    if not isinstance(date, str):
        return f"{path} has no date"
    if not isinstance(document.get("figures"), dict):
        return f"{path} has no figures mapping"
    series = document.get("series", {})
    if not isinstance(series, dict):
        return f"{path}: series is not a mapping"
    machine = document.get("machine")
    machine = machine if isinstance(machine, dict) else {}
    gpu = machine.get("gpu") if isinstance(machine.get("gpu"), str) else None
    problems: dict[str, list[str]] = {}
    figures = []
    for key, entries in document["figures"].items():
        listed = entries if isinstance(entries, list) else [entries]
        for number, entry in enumerate(listed):
            where = f"{path}: figures.{key}" + (f"[{number}]" if isinstance(entries, list) else "")
            checked = _figure(key, entry, where, path, date, gpu)
            if isinstance(checked, str):
                problems.setdefault(key, []).append(checked)
            else:
                figures.append(checked)
    found_series = {}
    for key, entry in series.items():
        checked_series = _series(key, entry, f"{path}: series.{key}", path, date)
        if isinstance(checked_series, str):
            problems.setdefault(key, []).append(checked_series)
        else:
            found_series[key] = checked_series
    benchmark = document.get("benchmark")
    return ResultsFile(
        path=path,
        benchmark=benchmark if isinstance(benchmark, str) else path.stem,
        date=date,
        machine=machine,
        figures=figures,
        series=found_series,
        problems=problems,
    )


def read_results_dir(results_dir: Path) -> dict[Path, ResultsFile | str]:
    """Every `*.json` under `results_dir` (sorted by name), read and checked."""
    return {path: read_results(path) for path in sorted(results_dir.glob("*.json"))}


def _figure(
    key: str, entry: Any, where: str, path: Path, date: str, gpu: str | None
) -> Figure | str:
    if not isinstance(entry, dict):
        return f"{where} is not a mapping"
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{where}.value is not a number"
    if not math.isfinite(value):
        return f"{where}.value must be a finite number, got {value}"
    unit = entry.get("unit")
    if not isinstance(unit, str):
        return f"{where}.unit is {unit!r}, expected a string"
    conditions = entry.get("conditions") or {}
    if not isinstance(conditions, dict):
        return f"{where}.conditions is not a mapping"
    return Figure(key, float(value), unit, conditions, path, date, gpu)


def _series(key: str, entry: Any, where: str, path: Path, date: str) -> Series | str:
    if not isinstance(entry, dict):
        return f"{where} is not a mapping"
    points, conditions = entry.get("points"), entry.get("conditions") or {}
    if not isinstance(points, list) or not points:
        return f"{where}.points is not a non-empty list"
    if not isinstance(conditions, dict):
        return f"{where}.conditions is not a mapping"
    spec = SERIES.get(key)
    for number, point in enumerate(points):
        if spec is None:
            continue
        if not spec.fields and not _is_number(point):
            return f"{where}.points[{number}] is not a number"
        if spec.fields:
            if not isinstance(point, dict):
                return f"{where}.points[{number}] is not a mapping"
            bad = [name for name in spec.fields if not _is_number(point.get(name))]
            if bad:
                return f"{where}.points[{number}] lacks numbers for {', '.join(bad)}"
    return Series(key, points, conditions, path, date)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
