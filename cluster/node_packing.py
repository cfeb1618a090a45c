"""How many nodes of a type hold a set of replicas: the Ray autoscaler's node rule.

The Ray autoscaler adds nodes for resource requests that cannot be placed and sizes
them by bin-packing the requests onto node types. pinstream asks for few kinds of
replica (shard, ingress, query encoder, embedder), each reserving the same CPUs, GPUs
and memory, so the packing is done by kind, largest first, into groups of identically
filled nodes: exact for what it models and fast at hundreds of thousands of replicas.
It assumes the scheduler packs (Ray places replicas on nodes that have room first);
replicas that sit spread out on more nodes than this are not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cluster.exceptions import ClusterError
from cluster.node_types import NodeType

_EPS = 1e-9


@dataclass(frozen=True)
class Demand:
    """`count` replicas of one kind, each reserving these Ray resources."""

    name: str
    count: int
    cpus: float
    gpus: float = 0.0
    memory_bytes: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ClusterError(f"{self.name}: replica count must be >= 0, got {self.count}")
        if min(self.cpus, self.gpus, self.memory_bytes) < 0:
            raise ClusterError(f"{self.name}: reserved resources must be >= 0")

    def with_count(self, count: int) -> Demand:
        """The same replicas, `count` of them."""
        return Demand(self.name, count, self.cpus, self.gpus, self.memory_bytes)


def nodes_for(demands: list[Demand], node: NodeType) -> int:
    """Nodes of `node`'s type that hold every replica of `demands`, packed largest first."""
    # Each group: [nodes, free CPUs, free GPUs, free memory], nodes in a group filled alike.
    groups: list[list[float]] = []
    capacity = (float(node.cpus), float(node.gpus), float(node.memory_bytes))
    for demand in sorted(demands, key=lambda d: (d.memory_bytes, d.gpus, d.cpus), reverse=True):
        need = (demand.cpus, demand.gpus, demand.memory_bytes)
        left = demand.count
        for group in list(groups):
            if left == 0:
                break
            left = _fill(groups, group, need, left)
        if left == 0:
            continue
        per_node = _fits(capacity, need)
        if per_node == 0:
            raise ClusterError(f"one {demand.name} replica does not fit a {node.name} node")
        fresh = [float(math.ceil(left / per_node)), *capacity]
        groups.append(fresh)
        _fill(groups, fresh, need, left)
    return int(sum(group[0] for group in groups))


def _fits(free: tuple[float, ...] | list[float], need: tuple[float, ...]) -> int:
    """Replicas of `need` that fit in `free` (unbounded where nothing is needed)."""
    counts = [math.floor(f / n + _EPS) for f, n in zip(free, need, strict=True) if n > 0]
    return min(counts) if counts else 1 << 62


def _fill(groups: list[list[float]], group: list[float], need: tuple[float, ...], left: int) -> int:
    """Place up to `left` replicas on `group`'s nodes, splitting it by fill; return what is left."""
    per_node = _fits(group[1:], need)
    if per_node == 0:
        return left
    nodes = int(group[0])
    full = min(nodes, left // per_node)
    rest = left - full * per_node if full < nodes else 0
    placed = full * per_node + rest
    groups.remove(group)
    free = group[1:]
    if full:
        groups.append([full, *(f - per_node * n for f, n in zip(free, need, strict=True))])
    if rest:
        groups.append([1, *(f - rest * n for f, n in zip(free, need, strict=True))])
    untouched = nodes - full - (1 if rest else 0)
    if untouched:
        groups.append([untouched, *free])
    return left - placed
