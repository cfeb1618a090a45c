"""How many shards one query visits: all of them (hash routing) or a measured share (centroid).

With hash routing every shard holds a random slice of the corpus, so every query visits
every shard and each shard sees the full query rate. With centroid routing the ingress
asks only the shards owning the query's `route_nprobe` nearest centroid groups; the
routing benchmark measures the mean share of shards touched (`routed_shards_touched_fraction`)
at its own shard count S_m. Carried over to the plan's S shards (derived bounds):

- S >= S_m: splitting a shard can at most split each touched shard in two, so the shards
  touched grow at most in proportion to S and the share does not rise: the measured share;
- S < S_m: merging shards cannot touch more of them than before: min(1, share x S_m / S);
- a query never touches more than `route_nprobe` shards: at most route_nprobe / S.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluster.bench_results import Figure, Missing
from cluster.plan_inputs import LOW_RECALL


@dataclass(frozen=True)
class FanOut:
    """The share of shards a query visits, and why."""

    routing: str
    fraction: float
    basis: str

    def queries_per_shard(self, qps: float) -> float:
        """Queries per second one shard sees."""
        return qps * self.fraction


def fan_out(routing: str, shards: int, measured: Figure | Missing) -> tuple[FanOut, list[str]]:
    """The plan's fan-out over `shards` shards, and warnings about it."""
    if routing == "hash":
        return FanOut(routing, 1.0, "hash routing: every query visits every shard"), []
    if isinstance(measured, Missing):
        basis = "centroid routing planned as full fan-out, an upper bound: " + measured.explain(
            "share of shards a routed query touches"
        )
        return FanOut(routing, 1.0, basis), [
            "centroid routing is configured but its fan-out is unmeasured: the plan assumes "
            "every query visits every shard"
        ]
    c = measured.conditions
    measured_shards, route_nprobe = int(c["shards"]), int(c["route_nprobe"])
    carried = min(1.0, measured.value * max(1.0, measured_shards / shards))
    fraction = min(carried, route_nprobe / shards)
    basis = (
        f"centroid routing: {fraction:.3g} of {shards:,} shards per query = min(measured "
        f"{measured.value:.3g} at {measured_shards} shards carried to {shards:,} -> "
        f"{carried:.3g}, route_nprobe {route_nprobe} / {shards:,} shards) from {measured.cite()}, "
        f"groups={c['groups']}, recall@10 {float(c['recall_at_10']):.3f}"
    )
    warnings = []
    if float(c["recall_at_10"]) < LOW_RECALL:
        warnings.append(
            f"centroid routing reached recall@10 {float(c['recall_at_10']):.3f} with "
            f"route_nprobe {route_nprobe} ({measured.cite()}): widen route_nprobe"
        )
    return FanOut(routing, fraction, basis), warnings
