"""The three scaling rules of a deployed pinstream, as pure state machines for the simulation.

- `ServeScaler`: Ray Serve's default policy (ray/serve/autoscaling_policy.py, Ray 2.60):
  desired = ceil(total ongoing requests, averaged over look_back_period_s, /
  target_ongoing_requests), clamped to
  [min_replicas, max_replicas], applied once the same direction was wanted for
  upscale_delay_s (up) or downscale_delay_s (down); a change of direction restarts the wait.
- `pool_rule`: Ray Data's actor pool: one actor more at utilisation >= the upscaling
  threshold, one fewer at <= the downscaling threshold, within [min, max]. Any function of
  the same signature swaps in (the freshness rule of the ingest job, for one).
- `NodePool`: the Ray autoscaler for one worker group: nodes for pending demand are launched
  at once (upscalingMode Default) and ready `boot_s` later; a node with nothing on it is
  removed after idleTimeoutSeconds, never below minReplicas; never more than maxReplicas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

# utilisation, actors now, min, max -> actors wanted
PoolRule = Callable[[float, int, int, int], int]


@dataclass(frozen=True)
class ServeRule:
    """One deployment's `autoscaling_config` (the keys the default policy reads)."""

    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float
    upscale_delay_s: float
    downscale_delay_s: float
    look_back_period_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 0 <= min_replicas <= max_replicas, got {self}")
        if self.target_ongoing_requests <= 0:
            raise ValueError("target_ongoing_requests must be > 0")
        if min(self.upscale_delay_s, self.downscale_delay_s, self.look_back_period_s) < 0:
            raise ValueError("delays must be >= 0")


@dataclass
class ServeScaler:
    """Serve's decision for one deployment: its target replicas, moved by the rule's delays."""

    rule: ServeRule
    target: int = 0
    _since: float | None = None  # when the current direction was first wanted
    _direction: int = 0
    _window: list[tuple[float, float]] = field(default_factory=list)  # (time, ongoing)

    def __post_init__(self) -> None:
        self.target = self.target or self.rule.min_replicas

    @property
    def waiting_up(self) -> bool:
        """Whether more replicas are wanted and the upscale delay has not passed yet."""
        return self._direction > 0

    def desired(self, total_ongoing: float) -> int:
        """Replicas the load asks for, before the delays: the formula and the bounds."""
        wanted = math.ceil(total_ongoing / self.rule.target_ongoing_requests - 1e-9)
        return min(self.rule.max_replicas, max(self.rule.min_replicas, wanted))

    def decide(self, now: float, total_ongoing: float) -> int:
        """The target after one decision at `now` with `total_ongoing` requests in flight."""
        since = now - self.rule.look_back_period_s
        self._window = [(t, v) for t, v in self._window if t > since] + [(now, total_ongoing)]
        desired = self.desired(sum(v for _, v in self._window) / len(self._window))
        direction = (desired > self.target) - (desired < self.target)
        if direction == 0:
            self._since, self._direction = None, 0
            return self.target
        if direction != self._direction or self._since is None:
            self._since, self._direction = now, direction
        delay = self.rule.upscale_delay_s if direction > 0 else self.rule.downscale_delay_s
        if now - self._since + 1e-6 >= delay:
            self.target, self._since, self._direction = desired, None, 0
        return self.target


def pool_rule(up: float, down: float) -> PoolRule:
    """Ray Data's actor pool rule with its thresholds (1.75 and 0.5 by default)."""
    if not 0 <= down < up:
        raise ValueError(f"need 0 <= downscaling threshold < upscaling threshold, got {down}, {up}")

    def rule(utilisation: float, actors: int, low: int, high: int) -> int:
        if utilisation >= up:
            actors += 1
        elif utilisation <= down:
            actors -= 1
        return min(high, max(low, actors))

    return rule


@dataclass
class NodePool:
    """One worker group under the Ray autoscaler."""

    name: str
    min_nodes: int
    max_nodes: int
    idle_timeout_s: float
    boot_s: float
    ready: int = 0
    booting: list[float] = field(default_factory=list)  # when each launched node is ready
    idle_since: list[float] = field(default_factory=list)  # one per ready node nothing uses

    def __post_init__(self) -> None:
        if not 0 <= self.min_nodes <= self.max_nodes:
            raise ValueError(f"{self.name}: need 0 <= min nodes <= max nodes")
        self.ready = self.ready or self.min_nodes

    def step(self, now: float, needed: int) -> int:
        """Nodes ready after one autoscaler round at `now` for `needed` nodes of demand."""
        wanted = min(self.max_nodes, max(self.min_nodes, needed))
        launch = wanted - self.ready - len(self.booting)
        if launch > 0:  # pending demand: every node it needs, at once
            self.booting += [now + self.boot_s] * launch
        self.ready += sum(1 for t in self.booting if t <= now)
        self.booting = [t for t in self.booting if t > now]
        idle = max(0, self.ready - max(needed, 0))
        # a node that is needed again stops being idle (the most recently idle first)
        self.idle_since = self.idle_since[:idle] + [now] * (idle - len(self.idle_since))
        expired = sum(1 for t in self.idle_since if now - t + 1e-6 >= self.idle_timeout_s)
        remove = min(expired, self.ready - self.min_nodes)
        if remove > 0:
            self.ready -= remove
            self.idle_since = self.idle_since[remove:]
        return self.ready

    @property
    def pending(self) -> bool:
        """Whether a launched node is not ready yet."""
        return bool(self.booting)
