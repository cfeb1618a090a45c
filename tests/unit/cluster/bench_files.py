"""Benchmark result files as `make bench` writes them, for the planner's tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cluster.results_file import SCHEMA

CREATED_AT = "2026-05-09T07:35:25Z"
# One valid figure per key, with every condition the planner requires.
VALID: dict[str, dict[str, Any]] = {
    "search_qps_per_replica": {
        "value": 800.0,
        "unit": "queries/s",
        "conditions": {
            "index": "IVF65536,PQ32",
            "dim": 384,
            "vectors": 100_000_000,
            "k": 10,
            "nprobe": 32,
            "threads": 4,
        },
    },
    "resident_bytes_per_vector": {
        "value": 120.0,
        "unit": "bytes",
        "conditions": {"index": "IVF65536,PQ32", "dim": 384, "vectors": 100_000_000},
    },
    "ingress_qps_per_replica": {
        "value": 2000.0,
        "unit": "queries/s",
        "conditions": {"num_cpus": 1, "shards": 64},
    },
    "query_encoder_qps_per_gpu": {
        "value": 10000.0,
        "unit": "queries/s",
        "conditions": {"model": "minilm", "dtype": "bfloat16", "max_batch_size": 64},
    },
    "embed_sentences_per_s_per_gpu": {
        "value": 12000.0,
        "unit": "sentences/s",
        "conditions": {"model": "minilm", "dtype": "bfloat16", "batch_size": 256},
    },
    "throughput_ratio_to_raw_encoder": {
        "value": 0.8,
        "unit": "ratio",
        "conditions": {"model": "minilm", "batch_size": 256},
    },
    "routed_shards_touched_fraction": {
        "value": 0.25,
        "unit": "fraction",
        "conditions": {"shards": 8, "groups": 64, "route_nprobe": 4, "recall_at_10": 0.95},
    },
    "gpu_search_qps": {
        "value": 40000.0,
        "unit": "queries/s",
        "conditions": {
            "index": "IVF65536,PQ32",
            "vectors": 100_000_000,
            "dim": 384,
            "k": 10,
            "batch": 1024,
            "nprobe": 32,
            "recall_at_10": 0.95,
        },
    },
    "gpu_encoder_sentences_per_s": {
        "value": 20000.0,
        "unit": "sentences/s",
        "conditions": {"dtype": "bfloat16", "batch": 512, "model": "minilm"},
    },
}
# The same replica searching 100 queries per call.
VALID["batched_search_qps_per_replica"] = {
    "value": 3200.0,
    "unit": "queries/s",
    "conditions": {**VALID["search_qps_per_replica"]["conditions"], "batch": 100},
}
FILES = {
    "shards.json": (
        "search_qps_per_replica",
        "batched_search_qps_per_replica",
        "resident_bytes_per_vector",
    ),
    "routing.json": ("routed_shards_touched_fraction",),
    "gpu_check.json": ("gpu_search_qps", "gpu_encoder_sentences_per_s"),
    "serving.json": ("ingress_qps_per_replica", "query_encoder_qps_per_gpu"),
    "ingest.json": ("embed_sentences_per_s_per_gpu", "throughput_ratio_to_raw_encoder"),
}


def write_results(
    results: Path,
    name: str,
    figures: dict[str, Any],
    gpu: str | None = "NVIDIA A10G",
    series: dict[str, Any] | None = None,
) -> Path:
    """Write one results file with the given figures (and series, where given)."""
    results.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "benchmark": name.removesuffix(".json"),
        "date": CREATED_AT,
        "machine": {"cpu": "test", "cpus": 16, "gpu": gpu},
        "figures": figures,
    }
    if series is not None:
        document["series"] = series
    path = results / name
    path.write_text(json.dumps(document))
    return path


def write_all(results: Path, gpu: str | None = "NVIDIA A10G") -> None:
    """Every results file, every figure valid."""
    for name, keys in FILES.items():
        write_results(results, name, {key: VALID[key] for key in keys}, gpu)
