"""`pinstream plan ... --simulate`: a day of diurnal load through the deployed scaling rules."""

from __future__ import annotations

from pathlib import Path

from cluster.bench_results import BenchFigures
from cluster.load_curve import DiurnalCurve
from cluster.node_types import NodeType
from cluster.plan_inputs import Assumptions, PlanTarget
from cluster.planner import make_plan
from cluster.scaling_simulation import simulate
from cluster.simulation_inputs import SimulationAssumptions
from cluster.simulation_report import render_day
from cluster.simulation_setup import deployment
from conf.config import PinstreamConfig


def simulated_day(
    target: PlanTarget,
    figures: BenchFigures,
    nodes: dict[str, NodeType],
    cfg: PinstreamConfig,
    assumptions: Assumptions,
    trough: float,
    manifests: Path,
    simulation: SimulationAssumptions | None = None,
) -> str:
    """The table of a day whose peak is `target`'s rates and whose trough is `trough` x them."""
    a = simulation or SimulationAssumptions()
    plan = make_plan(target, figures, nodes, assumptions)
    deployed = deployment(plan, figures, nodes, cfg, a, manifests)
    curve = DiurnalCurve.sine(target.qps, target.ingest_rate, trough)
    minutes = simulate(curve, deployed.loops, deployed.pools, deployed.pool_rule, a.tick_s)
    title = (
        f"a day from {target.qps * trough:,.0f} to {target.qps:,.0f} queries/s and "
        f"{target.ingest_rate * trough:,.0f} to {target.ingest_rate:,.0f} pins/s "
        f"(a sine, peak at 20:00), {target.pins:,} pins, index {target.index}"
    )
    return render_day(minutes, title, deployed.notes, a.lines())
