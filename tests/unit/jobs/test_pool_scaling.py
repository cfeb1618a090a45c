"""The freshness rule of the embedder pool, driven by a fake clock (no Ray, no sleeps)."""

from __future__ import annotations

import math

import pytest

from jobs.pool_scaling import PoolScalingRule, PoolSignal, lag_seconds
from tests.clock import ManualClock


def rule(clock: ManualClock, min_size: int = 1, max_size: int = 4) -> PoolScalingRule:
    return PoolScalingRule(
        slo_p99_s=3.0,
        min_size=min_size,
        max_size=max_size,
        upscale_delay_s=5.0,
        downscale_delay_s=30.0,
        clock=clock,
    )


def raised_to_two(clock: ManualClock) -> PoolScalingRule:
    """A rule whose floor a lasting breach has just raised to 2 (at 5 s)."""
    scaling = rule(clock)
    for second in (0.0, 5.0):
        clock.now = second
        scaling.decide(late())
    assert scaling.floor == 2
    return scaling


def late(p99: float = 4.0, size: int = 1, lag_s: float = 0.0) -> PoolSignal:
    return PoolSignal(freshness_p99_s=p99, lag_s=lag_s, size=size)


CALM = PoolSignal(freshness_p99_s=1.0, lag_s=0.5, size=1)


def test_a_breach_grows_the_floor_only_once_it_has_lasted_the_upscale_delay() -> None:
    clock = ManualClock(0.0)
    scaling = rule(clock)
    first = scaling.decide(late())
    assert (first.action, first.floor, first.cause) == ("hold", 1, "freshness")
    clock.now = 4.9
    assert scaling.decide(late()).action == "hold"
    clock.now = 5.0
    up = scaling.decide(late())
    assert (up.action, up.floor, up.cause, up.at) == ("up", 2, "freshness", 5.0)
    assert "freshness p99 4.00 s > SLO 3 s for 5.0 s" in up.reason
    assert up.describe().startswith("up to 2 actors: freshness p99 4.00 s")


def test_each_step_restarts_the_delay_and_the_floor_stops_at_max() -> None:
    clock = ManualClock(0.0)
    scaling = rule(clock, max_size=3)
    floors = []
    for second in range(0, 31):
        clock.now = float(second)
        decision = scaling.decide(late())
        if decision.action == "up":
            floors.append((second, decision.floor))
    assert floors == [(5, 2), (10, 3)]
    held = scaling.decide(late())
    assert held.action == "hold" and "at embedders_max" in held.reason


def test_the_floor_grows_from_the_pool_size_when_ray_has_grown_the_pool() -> None:
    clock = ManualClock(0.0)
    scaling = rule(clock)
    scaling.decide(late(size=3))
    clock.now = 5.0
    assert scaling.decide(late(size=3)).floor == 4


def test_lag_at_the_current_rate_breaks_the_slo_too() -> None:
    clock = ManualClock(0.0)
    scaling = rule(clock)
    scaling.decide(late(p99=1.0, lag_s=10.0))
    clock.now = 5.0
    up = scaling.decide(late(p99=1.0, lag_s=10.0))
    assert (up.action, up.cause) == ("up", "lag")
    assert "lag 10.00 s at the current rate > SLO 3 s" in up.reason


def test_a_recovery_before_the_delay_cancels_the_breach() -> None:
    clock = ManualClock(0.0)
    scaling = rule(clock)
    scaling.decide(late())
    clock.now = 4.0
    scaling.decide(CALM)
    clock.now = 6.0
    assert scaling.decide(late()).action == "hold"  # a new breach, 0 s old
    clock.now = 11.0
    assert scaling.decide(late()).action == "up"


def test_the_floor_drops_one_step_per_downscale_delay_well_within_the_slo() -> None:
    clock = ManualClock(0.0)
    scaling = rule(clock)
    for second in (0.0, 5.0, 10.0):
        clock.now = second
        scaling.decide(late(size=1))
    assert scaling.floor == 3
    moves = []
    for second in range(11, 200):
        clock.now = float(second)
        decision = scaling.decide(CALM)
        if decision.action == "down":
            moves.append((second, decision.floor, decision.cause))
    assert moves == [(41, 2, "within"), (71, 1, "within")]  # and never below min_size


def test_within_but_not_well_within_holds_the_floor_and_restarts_the_calm() -> None:
    clock = ManualClock(0.0)
    scaling = raised_to_two(clock)
    assert scaling.floor == 2
    for second in range(6, 100):
        clock.now = float(second)
        # Well within (1.0 s), but every tenth second only within (2.0 s: above half the
        # SLO): the calm restarts before it lasts the 30 s delay.
        p99 = 1.0 if second % 10 else 2.0
        assert scaling.decide(late(p99=p99)).action == "hold"
    assert scaling.floor == 2


def test_nothing_written_is_well_within() -> None:
    clock = ManualClock(0.0)
    scaling = raised_to_two(clock)
    clock.now = 6.0
    assert "nothing written" in scaling.decide(PoolSignal(None, 0.0, 2)).reason
    clock.now = 36.0
    assert scaling.decide(PoolSignal(None, 0.0, 2)).action == "down"


def test_lag_seconds() -> None:
    assert lag_seconds(0, 0.0) == 0.0
    assert lag_seconds(100, 50.0) == 2.0
    assert math.isinf(lag_seconds(1, 0.0))


def test_the_rule_refuses_bad_bounds() -> None:
    with pytest.raises(ValueError, match="min_size"):
        PoolScalingRule(3.0, 2, 1, 5.0, 30.0)
    with pytest.raises(ValueError, match="slo_p99_s"):
        PoolScalingRule(0.0, 1, 2, 5.0, 30.0)
