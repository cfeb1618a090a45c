"""The benchmark figures the capacity planner reads, and how it reads them from bench/results/.

Every per-replica and per-GPU number in a plan comes from a JSON file written by
`make bench`; this module is the one place that says which files and keys those
are. Each results file looks like::

    {
      "schema": "pinstream.bench/1",
      "benchmark": "shards",
      "date": "2026-05-09T07:35:25Z",
      "machine": {"cpu": "...", "cpus": 16, "gpu": "NVIDIA A10G"},
      "figures": {
        "search_qps_per_replica": {
          "value": 1234.5,
          "unit": "queries/s",
          "conditions": {"index": "IVF65536,PQ32", "dim": 384, "vectors": 10000000,
                         "k": 10, "nprobe": 32, "threads": 4}
        }
      }
    }

Other keys are allowed and ignored. A figure is used only when its file has the
schema above, its value is a number > 0, its unit is the expected one, it states
every condition listed in `FIGURES`, and (for per-GPU figures) `machine.gpu`
names the GPU; otherwise the plan says why it is missing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "pinstream.bench/1"
RUN_BENCH = "run `make bench`"


@dataclass(frozen=True)
class FigureSpec:
    """Where one figure lives (file and key), its unit, and the conditions it must state."""

    file: str
    key: str
    unit: str
    meaning: str
    conditions: tuple[str, ...] = ()
    needs_gpu: bool = False


FIGURES: dict[str, FigureSpec] = {
    spec.key: spec
    for spec in (
        FigureSpec(
            "shards.json",
            "search_qps_per_replica",
            "queries/s",
            "top-k searches per second one shard replica answers at its peak (in-process, "
            "one query per call), on `vectors` vectors with `threads` FAISS threads",
            ("index", "dim", "vectors", "k", "nprobe", "threads"),
        ),
        FigureSpec(
            "shards.json",
            "resident_bytes_per_vector",
            "bytes",
            "resident memory of a loaded shard replica (index, ids, versions, pin metadata) "
            "divided by its live vectors",
            ("index", "dim", "vectors"),
        ),
        FigureSpec(
            "serving.json",
            "ingress_qps_per_replica",
            "queries/s",
            "vector queries per second one ingress replica sustains over HTTP (proxy, fan-out "
            "to `shards` shards, merge) while the shard search itself is trivial",
            ("num_cpus", "shards"),
        ),
        FigureSpec(
            "serving.json",
            "query_encoder_qps_per_gpu",
            "queries/s",
            "text queries per second one query-encoder replica on one GPU encodes with "
            "dynamic batching",
            ("model", "dtype", "max_batch_size"),
            needs_gpu=True,
        ),
        FigureSpec(
            "ingest.json",
            "embed_sentences_per_s_per_gpu",
            "sentences/s",
            "the embedder class alone (no Ray) on one GPU, at its best batch size",
            ("model", "dtype", "batch_size"),
            needs_gpu=True,
        ),
        FigureSpec(
            "ingest.json",
            "throughput_ratio_to_raw_encoder",
            "ratio",
            "sustained ingest throughput (Kafka -> embeddings log) divided by the raw "
            "encoder's throughput on the same machine, model and batch size",
            ("model", "batch_size"),
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
class Missing:
    """A figure the planner needs but cannot use, and why."""

    key: str
    reason: str

    def explain(self, what: str) -> str:
        """One line: what is missing, why, and how to get it."""
        return f"{what}: no benchmark result ({self.reason}; {RUN_BENCH})"


@dataclass(frozen=True)
class BenchFigures:
    """Every figure of `FIGURES`, found or missing, read from one results folder."""

    results_dir: Path
    found: dict[str, Figure] = field(default_factory=dict)
    missing: dict[str, Missing] = field(default_factory=dict)

    def get(self, key: str) -> Figure | Missing:
        """The figure under `key` (a key of `FIGURES`), or why it is missing."""
        if key not in FIGURES:
            raise KeyError(f"{key!r} is not a planner figure (known: {sorted(FIGURES)})")
        return self.found.get(key) or self.missing[key]


def load_figures(results_dir: Path) -> BenchFigures:
    """Read every figure of `FIGURES` from the JSON files under `results_dir`."""
    found: dict[str, Figure] = {}
    missing: dict[str, Missing] = {}
    documents: dict[str, dict[str, Any] | str] = {}
    for spec in FIGURES.values():
        if spec.file not in documents:
            documents[spec.file] = _read_document(results_dir / spec.file)
        document = documents[spec.file]
        if isinstance(document, str):
            missing[spec.key] = Missing(spec.key, document)
            continue
        figure = _figure(spec, document, results_dir / spec.file)
        if isinstance(figure, Missing):
            missing[spec.key] = figure
        else:
            found[spec.key] = figure
    return BenchFigures(results_dir, found, missing)


def _read_document(path: Path) -> dict[str, Any] | str:
    """The parsed results file, or the reason it cannot be used."""
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
    if not isinstance(document.get("date"), str):
        return f"{path} has no date"
    if not isinstance(document.get("figures"), dict):
        return f"{path} has no figures mapping"
    return document


def _figure(spec: FigureSpec, document: dict[str, Any], path: Path) -> Figure | Missing:
    where = f"{path}: figures.{spec.key}"
    entry = document["figures"].get(spec.key)
    if entry is None:
        return Missing(spec.key, f"{where} is absent")
    if not isinstance(entry, dict):
        return Missing(spec.key, f"{where} is not a mapping")
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Missing(spec.key, f"{where}.value is not a number")
    if not math.isfinite(value) or value <= 0:
        return Missing(spec.key, f"{where}.value must be a finite number > 0, got {value}")
    if entry.get("unit") != spec.unit:
        return Missing(spec.key, f"{where}.unit is {entry.get('unit')!r}, expected {spec.unit!r}")
    conditions = entry.get("conditions") or {}
    if not isinstance(conditions, dict):
        return Missing(spec.key, f"{where}.conditions is not a mapping")
    absent = [name for name in spec.conditions if name not in conditions]
    if absent:
        return Missing(spec.key, f"{where}.conditions lacks {', '.join(absent)}")
    machine = document.get("machine")
    gpu = machine.get("gpu") if isinstance(machine, dict) else None
    if spec.needs_gpu and not (isinstance(gpu, str) and gpu):
        return Missing(spec.key, f"{where} was measured without a GPU (machine.gpu is not set)")
    return Figure(
        key=spec.key,
        value=float(value),
        unit=spec.unit,
        conditions=conditions,
        source=path,
        date=document["date"],
        gpu=gpu if isinstance(gpu, str) else None,
    )
