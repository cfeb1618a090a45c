"""What a capacity plan is asked for (`PlanTarget`), and the planner's own `Assumptions`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cluster.bench_results import BenchFigures
from cluster.exceptions import PlanError
from cluster.node_types import NodeType

ROUTINGS = ("hash", "centroid")
# A measured recall@10 below this gets a warning: the plan's index (or its routing) returns
# too few true neighbours without re-ranking, a finer code or a wider route_nprobe.
LOW_RECALL = 0.9


@dataclass(frozen=True)
class PlanTarget:
    """What the plan must carry: corpus size, query rate, ingest rate, vectors and index.

    nprobe: inverted lists a search visits; None searches as the benchmark did.
    routing: "hash" (every query visits every shard) or "centroid" (a query visits the
        owners of its nearest centroid groups: `shards.routing` of the config).
    """

    pins: int
    qps: float
    ingest_rate: float
    dim: int
    index: str
    metric: str = "ip"
    nprobe: int | None = None
    routing: str = "hash"

    def __post_init__(self) -> None:
        for name in ("pins", "qps", "ingest_rate", "dim"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise PlanError(f"{name} must be a finite number > 0, got {value}")
        if self.nprobe is not None and self.nprobe < 1:
            raise PlanError(f"nprobe must be >= 1, got {self.nprobe}")
        if self.routing not in ROUTINGS:
            raise PlanError(f"routing must be one of {list(ROUTINGS)}, got {self.routing!r}")


@dataclass(frozen=True)
class Assumptions:
    """The planner's own choices; printed with every plan so a reader can dispute them."""

    replica_memory_gib: float = 64.0
    gpu_replica_memory_gib: float = 20.0
    memory_headroom: float = 0.3
    utilization: float = 0.6
    min_replicas_per_shard: int = 2
    text_query_fraction: float = 1.0

    def __post_init__(self) -> None:
        for name in ("replica_memory_gib", "gpu_replica_memory_gib"):
            if getattr(self, name) <= 0:
                raise PlanError(f"{name} must be > 0 GiB, got {getattr(self, name)}")
        if self.memory_headroom < 0:
            raise PlanError(f"memory headroom must be >= 0, got {self.memory_headroom}")
        if not 0 < self.utilization <= 1:
            raise PlanError(f"utilization must be in (0, 1], got {self.utilization}")
        if self.min_replicas_per_shard < 1:
            raise PlanError("min replicas per shard must be >= 1")
        if not 0 <= self.text_query_fraction <= 1:
            raise PlanError("text query fraction must be in [0, 1]")

    def lines(self) -> list[str]:
        """One sentence per assumption."""
        return [
            f"a CPU shard replica holds at most {self.replica_memory_gib:g} GiB (the `memory` "
            "its Serve deployment reserves in cluster/kuberay/rayservice.yaml)",
            f"a GPU shard replica holds at most {self.gpu_replica_memory_gib:g} GiB of index in "
            "GPU memory (an A10G has 24 GB; the rest is CUDA context and search scratch); its "
            "bookkeeping stays in the node's RAM",
            f"memory headroom {self.memory_headroom:.0%} over index bytes: inverted lists grow "
            "by doubling, deletes wait for compaction, the growing segment is exact",
            f"replicas and GPUs run at <= {self.utilization:.0%} of their measured peak, "
            "which keeps queues (and p99) short and leaves room to catch up after a backlog",
            f"at least {self.min_replicas_per_shard} replicas per shard, so one can be "
            "replaced while the other serves",
            f"{self.text_query_fraction:.0%} of queries are text and need the query encoder "
            "(vector and related-pin queries need none)",
            "the ingest rate is the peak to sustain; a backlog drains at the spare capacity",
        ]


@dataclass(frozen=True)
class PlanRequest:
    """What a plan is made from: the target, the benchmark figures, node types, assumptions."""

    target: PlanTarget
    figures: BenchFigures
    nodes: dict[str, NodeType]
    assumptions: Assumptions = field(default_factory=Assumptions)
