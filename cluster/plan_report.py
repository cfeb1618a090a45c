"""The capacity plan as text for a terminal, and as JSON for tools."""

from __future__ import annotations

from typing import Any

from cluster.bench_results import BenchFigures, Figure
from cluster.node_types import format_bytes
from cluster.planner import Plan, ServingOption
from cluster.sizer import Count


def render(plan: Plan, figures: BenchFigures, launcher: str) -> str:
    """The plan as text for a terminal: the two ways to serve side by side, then the how."""
    t, index = plan.target, plan.index
    options = list(plan.serving.values())
    out = [
        "pinstream capacity plan",
        f"  target: {t.pins:,} pins, {t.qps:,.0f} queries/s, {t.ingest_rate:,.0f} pins/s ingest, "
        f"dim {t.dim}, {t.metric}, index {t.index}, {t.routing} routing",
        f"  node types: {launcher}",
        "",
    ]
    rows: list[tuple[str, list[str]]] = [
        ("shards", [o.shards.show() for o in options]),
        ("queries/s per shard", [f"{o.fan_out.queries_per_shard(t.qps):,.0f}" for o in options]),
        ("replicas per shard", [o.replicas_per_shard.show() for o in options]),
        ("nodes", [o.nodes.show() for o in options]),
        ("GPUs", [o.gpus.show() for o in options]),
        ("RAM", [o.ram_bytes.show_bytes() for o in options]),
        ("over a manifest cap", [str(len(o.over_caps)) for o in options]),
    ]
    width = max(len(label) for label, _ in rows) + 2
    out.append(" " * width + "".join(f"{o.name:<18}" for o in options))
    out += [f"{label:<{width}}" + "".join(f"{v:<18}" for v in values) for label, values in rows]
    out += ["", "how"]
    for o in options:
        out += [
            f"  {o.name}: fan-out: {o.fan_out.basis}",
            f"  {o.name}: shards: {o.shards.basis}",
            f"  {o.name}: replicas per shard: {o.replicas_per_shard.basis}",
            f"  {o.name}: nodes: {o.nodes.basis}; shard nodes {o.shard_nodes.basis}",
            f"  {o.name}: RAM: {o.ram_bytes.basis}",
        ]
    out += ["", "shared by both"]
    shared = [
        ("ingress replicas", plan.ingress_replicas),
        ("GPUs for query encoding", plan.encoder_gpus),
        ("GPUs for ingest", plan.ingest_gpus),
        *plan.nodes.items(),
    ]
    skip = {"cpu-worker (serving)", "gpu-worker (query encoding)"}  # in the columns above
    shared = [(label, count) for label, count in shared if label not in skip]
    width = max(len(label) for label, _ in shared) + 2
    out += [f"  {label:<{width}}{c.show():<10} {c.basis}" for label, c in shared]
    caps = [f"{o.name}: {line}" for o in options for line in o.over_caps] + plan.over_caps
    if caps:
        out += ["", "over the manifests' caps (raise them, or run cells: docs/scaling.md)"]
        out += [f"  ! {line}" for line in caps]
    out += [
        "",
        f"index memory (derived from {t.index!r}, not measured)",
        f"  per vector: {index.bytes_per_vector} B = " + " + ".join(index.vector_terms),
        f"  per shard, fixed: {format_bytes(index.fixed_bytes)} = "
        + " + ".join(index.fixed_terms or ("0",)),
        f"  sizing uses {plan.bytes_per_vector:,.1f} B per vector: {plan.bytes_basis}",
        "",
        "memory per node",
    ]
    out += [f"  {line}" for line in plan.memory]
    if plan.warnings:
        out += ["", "warnings"] + [f"  ! {w}" for w in plan.warnings]
    out += ["", "assumptions"] + [f"  - {line}" for line in plan.assumptions.lines()]
    out += [f"  - {line}" for line in plan.scaling]
    out += ["", f"benchmark results (from {figures.results_dir})"]
    out += [
        f"  used {f.key} = {f.value:,.6g} {f.unit} from {f.cite()}, {_conditions(f)}"
        for f in plan.used
    ]
    out += [f"  missing {m.key}: {m.reason}" for m in figures.missing.values()]
    for key, measured in figures.measured.items():
        others = [f for f in measured if f not in plan.used]
        if len(others) == len(measured):
            out.append(f"  not used {key} from {measured[0].cite()} (see above)")
        elif others:
            indexes = ", ".join(repr(f.conditions.get("index")) for f in others)
            out.append(f"  not used {key} of {indexes} (another index than the plan's)")
    return "\n".join(out) + "\n"


def as_json(plan: Plan, figures: BenchFigures) -> dict[str, Any]:
    """The plan as a JSON-ready mapping: the same numbers and reasons as the text."""
    t = plan.target
    return {
        "target": {
            "pins": t.pins,
            "qps": t.qps,
            "ingest_rate": t.ingest_rate,
            "dim": t.dim,
            "index": t.index,
            "metric": t.metric,
            "nprobe": t.nprobe,
            "routing": t.routing,
        },
        "serving": {o.name: _option(o, t.qps) for o in plan.serving.values()},
        "shared": {
            "ingress_replicas": _count(plan.ingress_replicas),
            "encoder_gpus": _count(plan.encoder_gpus),
            "ingest_gpus": _count(plan.ingest_gpus),
            "nodes": {name: _count(c) for name, c in plan.nodes.items()},
        },
        "over_caps": plan.over_caps,
        "bytes_per_vector": plan.bytes_per_vector,
        "bytes_basis": plan.bytes_basis,
        "memory": plan.memory,
        "warnings": plan.warnings,
        "assumptions": plan.assumptions.lines() + plan.scaling,
        "figures_used": [_figure(f) for f in plan.used],
        "figures_missing": {m.key: m.reason for m in figures.missing.values()},
    }


def _option(o: ServingOption, qps: float) -> dict[str, Any]:
    return {
        "routing": o.fan_out.routing,
        "fan_out_fraction": o.fan_out.fraction,
        "fan_out_basis": o.fan_out.basis,
        "queries_per_shard": o.fan_out.queries_per_shard(qps),
        "shards": _count(o.shards),
        "replicas_per_shard": _count(o.replicas_per_shard),
        "shard_nodes": _count(o.shard_nodes),
        "nodes": _count(o.nodes),
        "gpus": _count(o.gpus),
        "ram_bytes": _count(o.ram_bytes),
        "replica_memory": o.memory,
        "over_caps": o.over_caps,
    }


def _count(c: Count) -> dict[str, Any]:
    return {"value": c.value, "at_least": c.at_least, "basis": c.basis}


def _figure(f: Figure) -> dict[str, Any]:
    return {
        "key": f.key,
        "value": f.value,
        "unit": f.unit,
        "source": str(f.source),
        "date": f.date,
        "gpu": f.gpu,
        "conditions": f.conditions,
    }


def _conditions(f: Figure) -> str:
    return ", ".join(f"{k}={v}" for k, v in f.conditions.items())
