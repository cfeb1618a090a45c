"""The simulated day: nodes before replicas going up, replicas before nodes coming down."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cluster.load_curve import MINUTES_PER_DAY, DiurnalCurve
from cluster.node_packing import Demand, nodes_for
from cluster.node_types import NodeType
from cluster.scaling_rules import NodePool, ServeRule, ServeScaler, pool_rule
from cluster.scaling_simulation import Loop, Minute, simulate
from conf.config import load_config
from tests.unit.cluster.manifests import ROOT
from tests.unit.cluster.plan_args import parse

DOCS = ROOT / "docs" / "autoscaling.md"
EXAMPLE = Path(__file__).parent / "fixtures" / "kuberay_example"

NODE = NodeType("small", "test", cpus=4, gpus=0, memory_bytes=0, accelerator=None,
                min_workers=1, max_workers=10)  # fmt: skip
REPLICA = Demand("web", 0, cpus=2)  # two per node
RULE = ServeRule(min_replicas=2, max_replicas=12, target_ongoing_requests=1,
                 upscale_delay_s=10, downscale_delay_s=300)  # fmt: skip
UP, DOWN = 100, 800  # the minutes the load steps up and back down
BOOT_S, START_S, IDLE_S = 120.0, 60.0, 600.0


def step_day() -> DiurnalCurve:
    qps = [100.0 if UP <= m < DOWN else 10.0 for m in range(MINUTES_PER_DAY)]
    return DiurnalCurve.from_minutes(qps, [0.0] * MINUTES_PER_DAY)


def web_day() -> list[Minute]:
    # 10 q/s per replica, 0.2 s each: 2 in flight at full rate, so target 1 keeps them half busy
    loop = Loop(name="web", demand=REPLICA, pool="p", start_s=START_S, rate=10.0,
                latency_s=0.2, max_ongoing=4, load="qps", serve=ServeScaler(RULE),
                bounds=(2, 12))  # fmt: skip
    pools = {"p": (NodePool("p", 1, 10, IDLE_S, BOOT_S), NODE)}
    return simulate(step_day(), [loop], pools, pool_rule(1.75, 0.5), tick_s=60, warm_up_days=0)


def first(minutes: list[Minute], start: int, changed: object) -> int:
    return next(m for m in range(start, len(minutes)) if changed(minutes[m - 1], minutes[m]))  # type: ignore[operator]


def test_a_replica_is_never_ready_before_a_node_holds_it() -> None:
    for minute in web_day():
        held = nodes_for([REPLICA.with_count(minute.replicas["web"])], NODE)
        assert held <= minute.nodes["p"]


def test_scale_up_runs_nodes_first_then_replicas() -> None:
    day = web_day()
    assert day[UP - 1].replicas["web"] == 2 and day[UP - 1].nodes["p"] == 1
    nodes_up = first(day, UP, lambda a, b: b.nodes["p"] > a.nodes["p"])
    replicas_up = first(day, UP, lambda a, b: b.replicas["web"] > a.replicas["web"])
    # Serve wants 20 (clamped to 12) one tick after the step; the nodes take BOOT_S to come,
    # and the replicas placed on them START_S more to serve
    assert nodes_up == UP + 1 + BOOT_S / 60
    assert replicas_up == nodes_up + START_S / 60
    assert day[replicas_up].replicas["web"] == 12 and day[replicas_up].nodes["p"] == 6
    assert all(m.waiting for m in day[UP:replicas_up])  # the SLO counts the wait
    assert all(m.short for m in day[UP:replicas_up])  # 2 replicas serve 20 q/s of 100


def test_scale_down_runs_replicas_first_then_idle_nodes() -> None:
    day = web_day()
    replicas_down = first(day, DOWN, lambda a, b: b.replicas["web"] < a.replicas["web"])
    nodes_down = first(day, DOWN, lambda a, b: b.nodes["p"] < a.nodes["p"])
    assert replicas_down == DOWN + RULE.downscale_delay_s / 60
    assert nodes_down == replicas_down + IDLE_S / 60
    assert day[nodes_down].nodes["p"] == 1 and day[-1].replicas["web"] == 2
    assert not any(m.short for m in day[DOWN:])


def test_the_actor_pool_rule_is_a_swappable_function() -> None:
    pins = [50.0] * MINUTES_PER_DAY
    curve = DiurnalCurve.from_minutes([0.0] * MINUTES_PER_DAY, pins)
    seen: list[float] = []

    def grow_to_max(utilisation: float, actors: int, low: int, high: int) -> int:
        seen.append(utilisation)
        return high

    embedder = Loop(name="embedder", demand=REPLICA, pool="p", start_s=0, rate=10.0,
                    latency_s=1.0, max_ongoing=1, load="ingest", bounds=(1, 6))  # fmt: skip
    pools = {"p": (NodePool("p", 1, 10, IDLE_S, 0), NODE)}
    day = simulate(curve, [embedder], pools, grow_to_max, tick_s=60, warm_up_days=0)
    assert day[-1].replicas["embedder"] == 6 and day[-1].nodes["p"] == 3
    # one actor's first minute: 50 pins/s and the 40/s it left behind over its 10/s
    assert seen[0] == 9.0
    # Ray Data's own rule, at 1.75 / 0.5: one actor per decision up to the 6 that carry 50/s
    embedder.ready, embedder.starting, embedder.pending, embedder.backlog = 0, [], 0, 0.0
    pools = {"p": (NodePool("p", 1, 10, IDLE_S, 0), NODE)}
    day = simulate(curve, [embedder], pools, pool_rule(1.75, 0.5), tick_s=60, warm_up_days=0)
    assert [m.replicas["embedder"] for m in day[:4]] == [2, 3, 4, 5]
    assert day[-1].replicas["embedder"] == 6


SECTION = "## 5. The loops together: a day simulated"


def test_the_documented_days_table_is_stable_and_on_the_docs_page(
    capsys: pytest.CaptureFixture[str],
) -> None:
    section = DOCS.read_text().split(SECTION)[1].split("\n## ")[0]
    block = section.split("```")[1].replace("\\\n", " ")
    (line,) = [line for line in block.splitlines() if line.startswith("pinstream plan")]
    argv = shlex.split(line)[1:]
    assert "--simulate" in argv
    args = parse([*argv, "--results-dir", str(EXAMPLE)])
    assert args.run(load_config(), args) == 0
    printed = capsys.readouterr().out.replace(f"{EXAMPLE}/", "bench/results/")
    assert printed == (EXAMPLE / "simulated_day.md").read_text()
    table = [row for row in printed.splitlines() if row.startswith("| ")]
    assert len(table) == 2 + 24
    for row in [*table, next(r for r in printed.splitlines() if r.startswith("day: "))]:
        assert row in section, row
