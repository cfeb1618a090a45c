"""Autoscaling bounds for the KubeRay manifests from two capacity plans: the peak and the trough.

A deployment's `max_replicas` is what the plan needs at the peak and its `min_replicas`
what it needs at the daily trough (docs/autoscaling.md: keep the minimum at the daily
baseline, since a new shard replica takes minutes to load). A worker group's bounds are
the nodes that hold its deployments at their bounds, by the Ray autoscaler's node rule
(`cluster/node_packing.py`), so the groups can always hold every deployment at its max.
A count the plan cannot make (a figure is missing) keeps the manifest's bound, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cluster.manifest_patch import SHARD, Bounds
from cluster.node_packing import Demand, nodes_for
from cluster.node_types import CPU_WORKER, GPU_WORKER, NodeType
from cluster.planner import CPU_SERVING, Plan
from cluster.replica_resources import EMBEDDER, ENCODER, INGRESS
from cluster.sizer import Count
from conf.config import PinstreamConfig

INGEST_CPU_UNSIZED = "not sized by the planner (no figure for the Kafka readers and parse)"


@dataclass(frozen=True)
class Emitted:
    """The bounds to write, one line per bound saying why, and the config values to match."""

    bounds: Bounds
    notes: list[str]
    # Production-config keys (cluster/pinstream.yaml) that must hold these values.
    config: dict[str, int]


def kuberay_bounds(
    peak: Plan,
    trough: Plan,
    current: Bounds,
    demands: dict[str, Demand],
    nodes: dict[str, NodeType],
    cfg: PinstreamConfig,
) -> Emitted:
    """The manifests' bounds for carrying `trough` .. `peak` with `demands`' reservations."""
    notes: list[str] = []
    floor = peak.assumptions.min_replicas_per_shard
    top, low = peak.serving[CPU_SERVING], trough.serving[CPU_SERVING]
    shard = _bound(
        SHARD, low.replicas_per_shard, top.replicas_per_shard, current.deployments[SHARD], notes
    )
    ingress = _bound(
        INGRESS, trough.ingress_replicas, peak.ingress_replicas, current.deployments[INGRESS],
        notes, floor=floor, per=1.0,
    )  # fmt: skip
    encoder = _bound(
        ENCODER, trough.encoder_gpus, peak.encoder_gpus, current.deployments[ENCODER], notes,
        floor=1, per=demands[ENCODER].gpus,
    )  # fmt: skip
    ingest_now = (cfg.ingest.embedders_min, cfg.ingest.embedders_max)
    embedders = _bound(
        EMBEDDER, trough.ingest_gpus, peak.ingest_gpus, ingest_now, notes,
        floor=1, per=demands[EMBEDDER].gpus,
    )  # fmt: skip
    shards = top.shards.value or current.shards
    cpu, gpu = nodes[CPU_WORKER], nodes[GPU_WORKER]

    def held(pick: int) -> tuple[int, int, int]:
        serving_cpu = [
            demands[SHARD].with_count(shards * shard[pick]),
            demands[INGRESS].with_count(ingress[pick]),
        ]
        return (
            nodes_for(serving_cpu, cpu),
            nodes_for([demands[ENCODER].with_count(encoder[pick])], gpu),
            nodes_for([demands[EMBEDDER].with_count(embedders[pick])], gpu),
        )

    lows, highs = held(0), held(1)
    groups = {
        ("serving", CPU_WORKER): (lows[0], highs[0]),
        ("serving", GPU_WORKER): (lows[1], highs[1]),
        ("ingest", GPU_WORKER): (lows[2], highs[2]),
        ("ingest", CPU_WORKER): current.groups[("ingest", CPU_WORKER)],
    }
    notes += [
        f"serving {CPU_WORKER} nodes {lows[0]}..{highs[0]}: hold {shards} shards x "
        f"{shard[0]}..{shard[1]} replicas and {ingress[0]}..{ingress[1]} ingress replicas",
        f"serving {GPU_WORKER} nodes {lows[1]}..{highs[1]}: hold {encoder[0]}..{encoder[1]} "
        "query-encoder replicas",
        f"ingest {GPU_WORKER} nodes {lows[2]}..{highs[2]}: hold {embedders[0]}..{embedders[1]} "
        "embedder actors",
        f"ingest {CPU_WORKER} nodes kept at {groups[('ingest', CPU_WORKER)][0]}.."
        f"{groups[('ingest', CPU_WORKER)][1]}: {INGEST_CPU_UNSIZED}",
    ]
    config = {"shards.count": shards}
    for key, (lo, hi) in (("shard", shard), ("ingress", ingress), ("encoder", encoder)):
        config[f"serve.{key}_autoscaling.min_replicas"] = lo
        config[f"serve.{key}_autoscaling.max_replicas"] = hi
    config |= {"ingest.embedders_min": embedders[0], "ingest.embedders_max": embedders[1]}
    deployments = {SHARD: shard, INGRESS: ingress, ENCODER: encoder}
    bounds = Bounds(shards, {k: deployments[k] for k in current.deployments}, groups)
    return Emitted(bounds, notes, config)


def _bound(
    name: str,
    trough: Count,
    peak: Count,
    current: tuple[int, int],
    notes: list[str],
    floor: int = 1,
    per: float = 1.0,
) -> tuple[int, int]:
    """(min, max) replicas from the trough and peak counts (of GPUs where `per` is a replica's)."""
    what = f"{name} {'actors' if name == EMBEDDER else 'replicas'}"
    if peak.value is None or trough.value is None or peak.at_least:
        why = peak.basis if peak.value is None or peak.at_least else trough.basis
        notes.append(f"{what} kept at {current[0]}..{current[1]}: {why}")
        return current
    high = max(floor, _replicas(peak.value, per))
    low = min(high, max(floor, _replicas(trough.value, per)))
    notes.append(f"{what} {low}..{high}: trough {trough.basis}; peak {peak.basis}")
    return low, high


def _replicas(units: int, per: float) -> int:
    """Replicas that take `units` GPUs (or replicas, `per` = 1) in all."""
    return math.ceil(units / per) if per > 0 else units
