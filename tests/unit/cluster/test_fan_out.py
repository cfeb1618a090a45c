"""Fan-out: hash visits every shard; centroid routing carries the measured share to the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.bench_results import Figure, Missing
from cluster.fan_out import fan_out


def routed(value: float, shards: int = 8, route_nprobe: int = 4, recall: float = 0.95) -> Figure:
    conditions = {"shards": shards, "groups": 64, "route_nprobe": route_nprobe}
    conditions["recall_at_10"] = recall
    return Figure(
        "routed_shards_touched_fraction", value, "fraction", conditions, Path("r"), "d", None
    )


def test_hash_routing_visits_every_shard() -> None:
    fan, warnings = fan_out("hash", 19, Missing("routed_shards_touched_fraction", "absent"))
    assert fan.fraction == 1 and fan.queries_per_shard(2e6) == 2e6 and warnings == []


def test_unmeasured_centroid_routing_is_planned_as_full_fan_out_and_said() -> None:
    fan, (warning,) = fan_out("centroid", 19, Missing("routed_shards_touched_fraction", "absent"))
    assert fan.fraction == 1 and "unmeasured" in warning and "absent" in fan.basis


@pytest.mark.parametrize(
    ("shards", "fraction"),
    [
        (8, 0.25),  # as measured
        (4, 0.5),  # fewer shards: the same 2 shards touched of 4
        (2, 1.0),  # never above every shard
        (400, 4 / 400),  # at most route_nprobe shards
    ],
)
def test_the_measured_share_is_carried_to_the_plans_shards(shards: int, fraction: float) -> None:
    fan, _ = fan_out("centroid", shards, routed(0.25))
    assert fan.fraction == pytest.approx(fraction)
    assert fan.queries_per_shard(1000) == pytest.approx(1000 * fraction)


def test_low_routing_recall_is_a_warning() -> None:
    _, (warning,) = fan_out("centroid", 8, routed(0.25, recall=0.6))
    assert "recall@10 0.600" in warning
