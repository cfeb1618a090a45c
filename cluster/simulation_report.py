"""The simulated day as a table per hour, for a terminal and for docs/autoscaling.md."""

from __future__ import annotations

from cluster.manifest_patch import SHARD
from cluster.replica_caps import KUBERAY
from cluster.replica_resources import EMBEDDER, ENCODER, INGRESS
from cluster.scaling_simulation import Minute
from cluster.simulation_setup import INGEST_GPU, SERVING_CPU, SERVING_GPU

COLUMNS = [
    ("hour", 4), ("queries/s", 9), ("pins/s", 7), (INGRESS, 7), (f"{SHARD}-N", 7),
    (ENCODER, 13), (EMBEDDER, 8), (SERVING_CPU, 20), (SERVING_GPU, 20), (INGEST_GPU, 19),
    ("short", 5), ("SLO miss", 8),
]  # fmt: skip


def hourly(minutes: list[Minute]) -> list[list[str]]:
    """One row per hour: mean load, the fewest-most replicas and nodes ready, minutes missed."""
    rows = []
    for hour in range(len(minutes) // 60):
        block = minutes[hour * 60 : (hour + 1) * 60]
        replicas = {k: _span([m.replicas[k] for m in block]) for k in block[0].replicas}
        nodes = {k: _span([m.nodes[k] for m in block]) for k in block[0].nodes}
        rows.append(
            [
                f"{hour:02d}",
                f"{sum(m.qps for m in block) / 60:,.0f}",
                f"{sum(m.ingest for m in block) / 60:,.0f}",
                *(replicas[k] for k in (INGRESS, SHARD, ENCODER, EMBEDDER)),
                *(nodes[k] for k in (SERVING_CPU, SERVING_GPU, INGEST_GPU)),
                str(sum(m.short for m in block)),
                str(sum(m.short or m.waiting for m in block)),
            ]
        )
    return rows


def render_day(minutes: list[Minute], title: str, notes: list[str], assumptions: list[str]) -> str:
    """The table with what it was computed from, as Markdown (a terminal reads it too)."""
    rows = hourly(minutes)
    header = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    rule = "| " + " | ".join("---:" for _ in COLUMNS) + " |"
    body = ["| " + " | ".join(row) + " |" for row in rows]
    short = sum(m.short for m in minutes)
    missed = sum(m.short or m.waiting for m in minutes)
    out = [
        title,
        "",
        header,
        rule,
        *body,
        "",
        f"day: {missed} SLO-miss minutes, {short} of them with less capacity than load (short); "
        "the others waited on a scale-up. Replicas and nodes: the fewest-most ready in the "
        "hour; shard-N is per shard",
        "",
        f"from the rules and bounds of {KUBERAY.parent.name}/{KUBERAY.name}/*.yaml and "
        "cluster/pinstream.yaml, and the benchmark figures:",
        *(f"  - {line}" for line in notes),
        "assumed:",
        *(f"  - {line}" for line in assumptions),
    ]
    return "\n".join(out) + "\n"


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(high) if low == high else f"{low}-{high}"
