"""`pinstream plan ... --simulate`: a day of diurnal load through the deployed scaling rules."""

from __future__ import annotations

from pathlib import Path

from cluster.load_curve import DiurnalCurve
from cluster.plan_inputs import PlanRequest
from cluster.planner import make_plan
from cluster.scaling_simulation import simulate
from cluster.simulation_inputs import SimulationAssumptions
from cluster.simulation_report import render_day
from cluster.simulation_setup import deployment
from conf.config import PinstreamConfig


def simulated_day(
    request: PlanRequest,
    cfg: PinstreamConfig,
    trough: float,
    manifests: Path,
    simulation: SimulationAssumptions | None = None,
) -> str:
    """The table of a day whose peak is the target's rates and whose trough `trough` x them."""
    a = simulation or SimulationAssumptions()
    target = request.target
    plan = make_plan(target, request.figures, request.nodes, request.assumptions)
    deployed = deployment(plan, request.figures, request.nodes, cfg, a, manifests)
    curve = DiurnalCurve.sine(target.qps, target.ingest_rate, trough)
    minutes = simulate(curve, deployed.loops, deployed.pools, deployed.pool_rule, a.tick_s)
    title = (
        f"a day from {target.qps * trough:,.0f} to {target.qps:,.0f} queries/s and "
        f"{target.ingest_rate * trough:,.0f} to {target.ingest_rate:,.0f} pins/s "
        f"(a sine, peak at 20:00), {target.pins:,} pins, index {target.index}"
    )
    return render_day(minutes, title, deployed.notes, a.lines())
