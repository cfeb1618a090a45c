"""The fallback bar sized by share: a quantile of the primary's recent top scores."""

from __future__ import annotations

import numpy as np
import pytest

from serve.fallback_bar import RECOMPUTE_EVERY, FallbackBar
from serve.traffic import TrafficPolicy

SHARE = TrafficPolicy("primary", fallback="fallback", fallback_below=0.2, fallback_share=0.1)


def fed(bar: FallbackBar, scores: np.ndarray) -> FallbackBar:
    """`bar` after the primary answered with these top scores, each decided by the bar."""
    for score in scores:
        falls_back = SHARE.low_confidence(float(score), bar.metric, bar.bar())
        bar.observe(float(score), falls_back)
    return bar


def test_until_calibrated_the_fixed_bar_holds() -> None:
    bar = FallbackBar("ip", window=100, min_samples=10, policy=SHARE)
    fed(bar, np.full(9, 0.9))
    assert bar.bar() == 0.2 and not bar.summary()["calibrated"]
    fed(bar, np.full(1, 0.9))
    assert bar.bar() == pytest.approx(0.9) and bar.summary()["calibrated"]


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_the_fallback_takes_about_its_share_and_follows_a_drift(metric: str) -> None:
    rng = np.random.default_rng(0)
    bar = FallbackBar(metric, window=500, min_samples=100, policy=SHARE)
    fed(bar, rng.normal(0.6, 0.1, 2000))
    assert bar.summary()["share_taken"] == pytest.approx(0.1, abs=0.03)
    before = bar.bar()
    fed(bar, rng.normal(0.3, 0.1, 2000))  # the traffic drifts to lower scores
    assert bar.summary()["share_taken"] == pytest.approx(0.1, abs=0.03)
    assert bar.bar() < before - 0.2, "the bar moved with the scores"
    scores = rng.normal(0.3, 0.1, 500)
    wanted = np.quantile(scores, 0.1 if metric == "ip" else 0.9)
    fed(bar, scores)
    assert bar.bar() == pytest.approx(wanted, abs=0.02)


def test_the_bar_is_recomputed_every_few_scores_not_every_query() -> None:
    bar = FallbackBar("ip", window=100, min_samples=1, policy=SHARE)
    bar.observe(0.5, False)
    assert bar.bar() == 0.5
    for _ in range(RECOMPUTE_EVERY - 1):
        bar.observe(0.9, False)
    assert bar.bar() == 0.5, "not yet recomputed"
    bar.observe(0.9, False)
    assert bar.bar() > 0.5


def test_another_primary_starts_afresh_and_another_share_recounts() -> None:
    bar = fed(FallbackBar("ip", window=100, min_samples=10, policy=SHARE), np.full(50, 0.9))
    bar.adopt(TrafficPolicy("primary", fallback="fallback", fallback_share=0.3))
    assert bar.summary()["samples"] == 50 and bar.summary()["share_taken"] is None
    bar.adopt(TrafficPolicy("other", fallback="fallback", fallback_share=0.3))
    assert bar.summary()["samples"] == 0
    bar.adopt(TrafficPolicy("other", fallback="fallback", fallback_below=0.7))
    assert bar.bar() == 0.7, "no share: the fixed bar"


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="min_samples"):
        FallbackBar("ip", window=10, min_samples=11, policy=SHARE)
