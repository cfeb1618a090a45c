"""The scaling rules the simulation replays: Serve's, Ray Data's actor pool's, the node rule."""

from __future__ import annotations

import pytest

from cluster.scaling_rules import NodePool, ServeRule, ServeScaler, pool_rule

RULE = ServeRule(
    min_replicas=2, max_replicas=10, target_ongoing_requests=4,
    upscale_delay_s=10, downscale_delay_s=300, look_back_period_s=0,
)  # fmt: skip


def test_serve_wants_total_ongoing_over_target_within_its_bounds() -> None:
    scaler = ServeScaler(RULE)
    assert scaler.target == 2  # starts at min_replicas
    assert scaler.desired(20) == 5  # ceil(20 / 4)
    assert scaler.desired(21) == 6
    assert scaler.desired(1000) == 10 and scaler.desired(0) == 2


def test_serve_scales_up_only_after_the_upscale_delay() -> None:
    scaler = ServeScaler(RULE)
    assert [scaler.decide(t, 24) for t in (0, 5, 9.9)] == [2, 2, 2]
    assert scaler.decide(10, 24) == 6
    # the wait counts from the first decision that wanted more, whatever the amount
    assert scaler.decide(11, 40) == 6 and scaler.decide(21, 40) == 10


def test_serve_scales_down_only_after_the_downscale_delay_and_a_reversal_restarts_it() -> None:
    scaler = ServeScaler(RULE, target=8)
    assert scaler.decide(0, 8) == 8
    assert scaler.decide(299, 8) == 8
    assert scaler.decide(300, 8) == 2
    scaler = ServeScaler(RULE, target=8)
    scaler.decide(0, 8)
    assert scaler.decide(200, 32) == 8  # at target: the downscale wait is dropped
    assert scaler.decide(250, 8) == 8 and scaler.decide(549, 8) == 8
    assert scaler.decide(550, 8) == 2  # 300 s after the wait restarted at 250


def test_serve_averages_ongoing_requests_over_its_look_back_period() -> None:
    rule = ServeRule(1, 100, 1, upscale_delay_s=0, downscale_delay_s=0, look_back_period_s=30)
    scaler = ServeScaler(rule)
    assert scaler.decide(0, 10) == 10
    assert scaler.decide(10, 40) == 25  # (10 + 40) / 2
    assert scaler.decide(20, 40) == 30  # (10 + 40 + 40) / 3
    assert scaler.decide(30, 40) == 40  # the sample at 0 is 30 s old: out of the window


def test_serve_rule_checks_its_bounds() -> None:
    with pytest.raises(ValueError, match="min_replicas <= max_replicas"):
        ServeRule(3, 2, 1, 0, 0)
    with pytest.raises(ValueError, match="target_ongoing_requests"):
        ServeRule(1, 2, 0, 0, 0)


def test_actor_pool_grows_at_the_upscaling_threshold_and_shrinks_at_the_downscaling_one() -> None:
    rule = pool_rule(up=1.75, down=0.5)
    assert rule(1.75, 4, 2, 16) == 5
    assert rule(1.74, 4, 2, 16) == 4
    assert rule(0.51, 4, 2, 16) == 4
    assert rule(0.5, 4, 2, 16) == 3
    assert rule(9.0, 16, 2, 16) == 16 and rule(0.0, 2, 2, 16) == 2
    with pytest.raises(ValueError, match="downscaling threshold"):
        pool_rule(up=0.5, down=0.5)


def test_nodes_for_pending_demand_are_launched_at_once_and_ready_after_booting() -> None:
    pool = NodePool("cpu", min_nodes=1, max_nodes=5, idle_timeout_s=600, boot_s=240)
    assert pool.ready == 1
    assert pool.step(0, 4) == 1 and pool.booting == [240, 240, 240]
    assert pool.step(100, 4) == 1 and pool.pending
    assert pool.step(240, 4) == 4 and not pool.pending
    # never more than max_nodes, however much is pending
    assert pool.step(250, 99) == 4 and len(pool.booting) == 1


def test_idle_nodes_go_after_the_idle_timeout_never_below_min() -> None:
    pool = NodePool("cpu", min_nodes=1, max_nodes=5, idle_timeout_s=600, boot_s=0, ready=4)
    assert pool.step(0, 2) == 4  # two idle from now
    assert pool.step(599, 2) == 4
    assert pool.step(600, 2) == 2
    assert pool.step(700, 0) == 2  # idle again, from 700
    assert pool.step(1000, 1) == 2  # one needed again: its idle time is forgotten
    assert pool.step(1300, 1) == 1  # the other was idle since 700
    assert pool.step(9000, 0) == 1  # min_nodes stays
