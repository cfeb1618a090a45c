"""What each model generation did in the query path: answers by role, fallbacks, shadow runs,
online recall. Exported as Prometheus metrics and, per ingress replica, at /v1/generations."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from serve.generation import recall_at_k
from serve.metrics import IngressMetrics
from shards.shard_state import Hits


@dataclass
class GenerationStats:
    """Running totals of one generation since the ingress replica started."""

    answered: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency_s_total: float = 0.0
    shadow_runs: int = 0
    shadow_failures: int = 0
    shadow_overlap_total: float = 0.0
    recall_samples: int = 0
    recall_total: float = 0.0

    def summary(self) -> dict[str, Any]:
        answered = sum(self.answered.values())
        return {
            "answered": dict(self.answered),
            "mean_latency_ms": round(1000 * self.latency_s_total / answered, 3)
            if answered
            else None,
            "shadow_runs": self.shadow_runs,
            "shadow_failures": self.shadow_failures,
            "shadow_overlap": _mean(self.shadow_overlap_total, self.shadow_runs),
            "recall_samples": self.recall_samples,
            "online_recall": _mean(self.recall_total, self.recall_samples),
        }


class GenerationMonitor:
    """Counts per generation; each method also feeds the matching Prometheus metric."""

    def __init__(self, metrics: IngressMetrics) -> None:
        self.metrics = metrics
        self._stats: dict[str, GenerationStats] = defaultdict(GenerationStats)

    def answered(self, generation: str, role: str, took_s: float) -> None:
        stats = self._stats[generation]
        stats.answered[role] += 1
        stats.latency_s_total += took_s
        self.metrics.generation_queries.inc(tags={"generation": generation, "role": role})
        self.metrics.generation_latency.observe(took_s, tags={"generation": generation})

    def shadowed(self, generation: str, took_s: float, served: Hits, shadow: Hits) -> None:
        overlap = recall_at_k(shadow, served)  # share of the served answer the shadow found
        stats = self._stats[generation]
        stats.shadow_runs += 1
        stats.shadow_overlap_total += overlap
        self.metrics.shadow_overlap.observe(overlap, tags={"generation": generation})
        self.metrics.generation_latency.observe(took_s, tags={"generation": generation})

    def shadow_failed(self, generation: str) -> None:
        self._stats[generation].shadow_failures += 1

    def recall(self, generation: str, value: float) -> None:
        stats = self._stats[generation]
        stats.recall_samples += 1
        stats.recall_total += value
        self.metrics.online_recall.observe(value, tags={"generation": generation})

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every generation's summary, by generation."""
        return {generation: stats.summary() for generation, stats in sorted(self._stats.items())}


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 4) if count else None
