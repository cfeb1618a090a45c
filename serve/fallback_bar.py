"""The fallback's score bar when the traffic policy sizes it by share of traffic.

With `fallback_share` s, the policy wants the fallback to answer about s of the queries the
primary would answer: those whose top score is among the lowest s (for inner product; the
highest distances for L2) of the primary's recent top scores. Each ingress replica keeps a
window of the primary's last top scores and takes the bar as that quantile, so the bar
follows the traffic as it drifts. Until the window holds `min_samples` scores, the policy's
fixed `fallback_below` is the bar. The share the fallback actually took (over the same
window of decisions) is reported beside the bar.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from conf.config import higher_is_better
from serve.traffic import TrafficPolicy

# The bar is recomputed after this many new scores, not after every query (a quantile of
# the whole window each time would cost more than the decision it makes).
RECOMPUTE_EVERY = 16


class FallbackBar:
    """Recent top scores of the primary and the fallback decisions taken on them."""

    def __init__(self, metric: str, window: int, min_samples: int, policy: TrafficPolicy) -> None:
        if not 0 < min_samples <= window:
            raise ValueError(f"need 0 < min_samples ({min_samples}) <= window ({window})")
        self.metric = metric
        self.window = window
        self.min_samples = min_samples
        self.policy = policy
        self._scores: deque[float] = deque(maxlen=window)
        self._fell_back: deque[bool] = deque(maxlen=window)
        self._bar: float | None = None
        self._since_recompute = 0

    def adopt(self, policy: TrafficPolicy) -> None:
        """Follow a new policy: another primary has scores of its own, and another share
        counts its decisions afresh. (Called from the policy thread: new deques, not
        cleared ones, so that a query reading the old ones is not disturbed.)"""
        if policy.primary != self.policy.primary:
            self._scores = deque(maxlen=self.window)
        if (policy.primary, policy.fallback_share) != (
            self.policy.primary,
            self.policy.fallback_share,
        ):
            self._fell_back = deque(maxlen=self.window)
            self._bar = None
        self.policy = policy

    def bar(self) -> float:
        """The score under which (over which, for L2) an answer goes to the fallback."""
        policy = self.policy
        if policy.fallback_share == 0.0 or len(self._scores) < self.min_samples:
            return policy.fallback_below
        if self._bar is None or self._since_recompute >= RECOMPUTE_EVERY:
            share = policy.fallback_share
            quantile = share if higher_is_better(self.metric) else 1.0 - share
            self._bar = float(np.quantile(np.fromiter(self._scores, np.float64), quantile))
            self._since_recompute = 0
        return self._bar

    def observe(self, top_score: float | None, fell_back: bool) -> None:
        """One answer of the primary: its top score (None: no hit) and whether it fell back."""
        self._fell_back.append(fell_back)
        if top_score is not None:
            self._scores.append(top_score)
            self._since_recompute += 1

    def summary(self) -> dict[str, Any]:
        """What /v1/generations shows: the share asked for and taken, the bar, the samples."""
        decisions, share = len(self._fell_back), self.policy.fallback_share
        return {
            "share_wanted": share or None,
            "share_taken": round(sum(self._fell_back) / decisions, 4) if decisions else None,
            "bar": round(self.bar(), 6),
            "calibrated": share > 0 and len(self._scores) >= self.min_samples,
            "samples": len(self._scores),
        }
