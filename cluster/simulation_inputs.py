"""What the simulation replays: rules and bounds from the deployment files, rates from `make bench`.

Serve's rules (`autoscaling_config`, `max_ongoing_requests`) and the worker groups' bounds
and idle timeouts come from the RayService and the ingest RayCluster (the same policies as
conf/serve.yaml, tests check); the embedder pool's bounds from `cluster/pinstream.yaml`
and its thresholds from the ingest head's environment. Per-replica rates and latencies are
the benchmark figures the planner uses, carried to the plan's shard size the same way
(`cluster/stand_in.py`); the times to boot a node and start a replica are assumptions,
printed with the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster.bench_results import BenchFigures, Figure
from cluster.index_memory import IndexMemory
from cluster.results_file import read_results
from cluster.stand_in import find_stand_in, search_scale

INGRESS_LATENCY = "vector_p50_ms_at_70pct"  # serving.json: a vector query through the stack


@dataclass(frozen=True)
class SimulationAssumptions:
    """Times the deployment files do not state; printed with every simulated day."""

    tick_s: float = 10.0
    node_boot_s: float = 240.0  # a cloud VM, the Ray pod, the image pulled
    shard_start_s: float = 120.0  # a 64 GiB snapshot at ~1 GB/s, then the log's tail
    replica_start_s: float = 30.0  # ingress, query encoder, embedder: load code and model

    def __post_init__(self) -> None:
        if not 0 < self.tick_s <= 60 or 60 % self.tick_s:
            raise ValueError(f"tick_s must divide a minute, got {self.tick_s}")
        for name in ("node_boot_s", "shard_start_s", "replica_start_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def lines(self) -> list[str]:
        """One sentence per assumption."""
        return [
            f"one decision of every rule each {self.tick_s:g} s",
            f"a new node is ready {self.node_boot_s:g} s after the autoscaler asks for it",
            f"a shard replica serves {self.shard_start_s:g} s after it is placed (snapshot, "
            f"log tail); ingress, encoder and embedder replicas {self.replica_start_s:g} s",
        ]


@dataclass(frozen=True)
class Rate:
    """What one replica serves per second and how long a request stays in it, and from where."""

    per_replica: float | None
    latency_s: float
    basis: str


def shard_rate(figures: BenchFigures, index: IndexMemory, vectors: int, nprobe: int | None) -> Rate:
    """A shard replica: the batched search rate, the latency of one search, both scaled."""
    found = {}
    for key in ("batched_search_qps_per_replica", "search_qps_per_replica"):
        stand = find_stand_in(figures.candidates(key), index)
        if not isinstance(stand, str):
            found[key] = stand.figure.value * search_scale(stand, vectors, nprobe).factor
    single = found.get("search_qps_per_replica")
    if single is None:
        return Rate(None, 0.0, "shard search rate unmeasured for this index (run `make bench`)")
    rate = found.get("batched_search_qps_per_replica", single)
    return Rate(
        rate,
        1 / single,
        f"shard: {rate:,.1f} q/s per replica (batched search, scaled to {vectors:,} vectors), "
        f"{1000 / single:,.1f} ms per search (one query per call, scaled alike)",
    )


def ingress_rate(figures: BenchFigures) -> Rate:
    """An ingress replica: its measured rate; a request stays for the measured query latency."""
    found = figures.get("ingress_qps_per_replica")
    if not isinstance(found, Figure):
        return Rate(None, 0.0, f"ingress unmeasured: {found.reason}")
    latency = _figure(found.source, INGRESS_LATENCY)
    if latency is None:
        return Rate(found.value, 1 / found.value, "ingress: no latency measured, 1 / rate")
    return Rate(
        found.value,
        latency.value / 1000,
        f"ingress: {found.value:,.1f} q/s per replica, {latency.value:,.0f} ms per query "
        f"({INGRESS_LATENCY} of {latency.cite()})",
    )


def gpu_rate(figures: BenchFigures, key: str, batch: int, wait_s: float, ratio: float) -> Rate:
    """A one-GPU replica (query encoder, embedder): `key`'s rate x `ratio`; a full batch's time."""
    found = figures.get(key)
    if not isinstance(found, Figure):
        raw = figures.candidates("gpu_encoder_sentences_per_s")
        if not raw:
            return Rate(None, 0.0, f"{key} unmeasured: {found.reason}")
        found = max(raw, key=lambda f: f.value)
    rate = found.value * ratio
    latency = batch / rate + wait_s
    return Rate(rate, latency, f"{key}: {rate:,.1f}/s per GPU from {found.key} of {found.cite()}")


def pipeline_ratio(figures: BenchFigures) -> float:
    """Ingest throughput over the raw encoder's, at most 1 (as the planner takes it)."""
    found = figures.get("throughput_ratio_to_raw_encoder")
    return min(1.0, found.value) if isinstance(found, Figure) else 1.0


def autoscaling(deployment: dict[str, Any]) -> dict[str, Any]:
    """A deployment's `autoscaling_config` with Ray's default look-back where unset."""
    config = dict(deployment["autoscaling_config"])
    config.setdefault("look_back_period_s", 30.0)
    return config


def deployments(rayservice: str) -> dict[str, dict[str, Any]]:
    """The RayService's Serve deployments by name."""
    service = yaml.safe_load(rayservice)
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    return {d["name"]: d for d in app["deployments"]}


def idle_timeout(spec: dict[str, Any], group: dict[str, Any]) -> float:
    """A group's idle timeout: its own, else its cluster's autoscaler's (KubeRay's default 60 s)."""
    cluster = spec.get("autoscalerOptions", {}).get("idleTimeoutSeconds", 60)
    return float(group.get("idleTimeoutSeconds", cluster))


def pool_thresholds(ingest: dict[str, Any]) -> tuple[float, float]:
    """Ray Data's actor pool thresholds as the ingest head's environment sets them."""
    head = ingest["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in head.get("env", [])}
    prefix = "RAY_DATA_DEFAULT_ACTOR_POOL_UTIL_"
    return float(env.get(f"{prefix}UPSCALING_THRESHOLD", 1.75)), float(
        env.get(f"{prefix}DOWNSCALING_THRESHOLD", 0.5)
    )


def _figure(path: Path, key: str) -> Figure | None:
    results = read_results(path)
    if isinstance(results, str):
        return None
    named = results.figures_named(key)
    return named[0] if named else None
