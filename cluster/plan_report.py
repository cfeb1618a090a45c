"""The capacity plan as text for a terminal."""

from __future__ import annotations

from cluster.bench_results import BenchFigures, Figure
from cluster.node_types import format_bytes
from cluster.planner import Plan


def render(plan: Plan, figures: BenchFigures, launcher: str) -> str:
    """The plan as text for a terminal."""
    t, index = plan.target, plan.index
    rows = [
        ("shards", plan.shards),
        ("replicas per shard", plan.replicas_per_shard),
        ("ingress replicas", plan.ingress_replicas),
        ("GPUs for query encoding", plan.encoder_gpus),
        ("GPUs for ingest", plan.ingest_gpus),
    ]
    out = [
        "pinstream capacity plan",
        f"  target: {t.pins:,} pins, {t.qps:,.0f} queries/s, {t.ingest_rate:,.0f} pins/s ingest, "
        f"dim {t.dim}, {t.metric}, index {t.index}",
        f"  node types: {launcher}",
        "",
        f"index memory (derived from {t.index!r}, not measured)",
        f"  per vector: {index.bytes_per_vector} B = " + " + ".join(index.vector_terms),
        f"  per shard, fixed: {format_bytes(index.fixed_bytes)} = "
        + " + ".join(index.fixed_terms or ("0",)),
        f"  sizing uses {plan.bytes_per_vector:,.1f} B per vector: {plan.bytes_basis}",
        "",
    ]
    width = max(len(label) for label, _ in rows) + 2
    out += [f"{label:<{width}}{count.show():<10} {count.basis}" for label, count in rows]
    out += ["", "nodes by type"]
    width = max(len(name) for name in plan.nodes) + 4
    out += [f"  {name:<{width}}{c.show():<10} {c.basis}" for name, c in plan.nodes.items()]
    out += ["", "memory per node"] + [f"  {line}" for line in plan.memory]
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


def _conditions(f: Figure) -> str:
    return ", ".join(f"{k}={v}" for k, v in f.conditions.items())
