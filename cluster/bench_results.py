"""The benchmark figures the capacity planner reads, and how it reads them from bench/results/.

Every per-replica and per-GPU number in a plan comes from a JSON file written by
`make bench` (format: `cluster/results_file.py`); this module is the one place that
says which files and keys those are. A figure is used only when its file has the
schema, its value is a number > 0, its unit is the expected one, it states every
condition listed in `FIGURES`, and (for per-GPU figures) `machine.gpu` names the GPU;
otherwise the plan says why it is missing. A key measured under several conditions
(e.g. `search_qps_per_replica` for each index the shard benchmark ran) gives the
planner every usable measurement to choose from (`BenchFigures.candidates`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cluster.results_file import Figure, ResultsFile, read_results

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
            "batched_search_qps_per_replica",
            "queries/s",
            "top-k searches per second one shard replica answers in batches of `batch` queries "
            "per call (what a loaded replica's micro-batcher forms), conditions as above",
            ("index", "dim", "vectors", "k", "nprobe", "threads", "batch"),
        ),
        FigureSpec(
            "shards.json",
            "resident_bytes_per_vector",
            "bytes",
            "memory of a loaded shard replica (anonymous: key table, segment arrays, unmappable "
            "FAISS lists; plus its mapped FAISS index) divided by its live vectors",
            ("index", "dim", "vectors"),
        ),
        FigureSpec(
            "routing.json",
            "routed_shards_touched_fraction",
            "fraction",
            "mean share of the shards one query touches with centroid-routed shards (the "
            "ingress asks only the owners of the query's `route_nprobe` nearest groups)",
            ("shards", "groups", "route_nprobe", "recall_at_10"),
        ),
        FigureSpec(
            "gpu_check.json",
            "gpu_search_qps",
            "queries/s",
            "top-k searches per second on one GPU, queries in batches of `batch`, the index "
            "in GPU memory (bench/gpu_check.py, no Ray)",
            ("index", "vectors", "dim", "k", "batch", "recall_at_10"),
            needs_gpu=True,
        ),
        FigureSpec(
            "gpu_check.json",
            "gpu_encoder_sentences_per_s",
            "sentences/s",
            "the encoder alone on one GPU (bench/gpu_check.py, no Ray), per dtype and batch",
            ("dtype", "batch", "model"),
            needs_gpu=True,
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
    # Every usable measurement of a key, the primary (`found`) one first.
    measured: dict[str, list[Figure]] = field(default_factory=dict)

    def get(self, key: str) -> Figure | Missing:
        """The figure under `key` (a key of `FIGURES`), or why it is missing."""
        _check_key(key)
        return self.found.get(key) or self.missing[key]

    def candidates(self, key: str) -> list[Figure]:
        """Every usable measurement of `key` (several conditions, e.g. one per index)."""
        _check_key(key)
        return self.measured.get(key, [])


def load_figures(results_dir: Path) -> BenchFigures:
    """Read every figure of `FIGURES` from the JSON files under `results_dir`."""
    found: dict[str, Figure] = {}
    missing: dict[str, Missing] = {}
    measured: dict[str, list[Figure]] = {}
    files: dict[str, ResultsFile | str] = {}
    for spec in FIGURES.values():
        if spec.file not in files:
            files[spec.file] = read_results(results_dir / spec.file)
        results = files[spec.file]
        if isinstance(results, str):
            missing[spec.key] = Missing(spec.key, results)
            continue
        usable, reasons = [], list(results.problems.get(spec.key, []))
        for figure in results.figures_named(spec.key):
            reason = _unusable(spec, figure)
            if reason is None:
                usable.append(figure)
            else:
                reasons.append(reason)
        if usable:
            found[spec.key], measured[spec.key] = usable[0], usable
        elif reasons:
            missing[spec.key] = Missing(spec.key, "; ".join(reasons))
        else:
            absent = f"{results.path}: figures.{spec.key} is absent"
            if spec.needs_gpu and not results.machine.get("gpu"):
                absent += ", and that run had no GPU (machine.gpu is not set)"
            missing[spec.key] = Missing(spec.key, absent)
    return BenchFigures(results_dir, found, missing, measured)


def _check_key(key: str) -> None:
    if key not in FIGURES:
        raise KeyError(f"{key!r} is not a planner figure (known: {sorted(FIGURES)})")


def _unusable(spec: FigureSpec, figure: Figure) -> str | None:
    """Why a well-formed figure cannot be used for `spec`, or None."""
    where = f"{figure.source}: figures.{spec.key}"
    index = figure.conditions.get("index")
    where += f" (index {index!r})" if index is not None else ""
    if figure.value <= 0:
        return f"{where}: value must be a finite number > 0, got {figure.value:g}"
    if figure.unit != spec.unit:
        return f"{where}: unit is {figure.unit!r}, expected {spec.unit!r}"
    absent = [name for name in spec.conditions if name not in figure.conditions]
    if absent:
        return f"{where}: conditions lacks {', '.join(absent)}"
    if spec.needs_gpu and not figure.gpu:
        return f"{where} was measured without a GPU (machine.gpu is not set)"
    return None
