"""A day of diurnal load replayed through the scaling rules of a deployed pinstream.

Each tick: the load gives every deployment its requests in flight by Little's law
(arrival rate x measured latency; a saturated replica holds `max_ongoing_requests`);
Serve's rule moves each deployment's target and Ray Data's rule the embedder pool; a
replica that is wanted but has no room is pending, and the pending and placed replicas
are what the Ray autoscaler packs into nodes (`cluster/node_packing.py`). Scale-up
therefore runs nodes first, then replicas: a pending replica is placed only once a node
with room is ready, and serves `start_s` after that. Scale-down runs replicas first, then
nodes: a node goes only when idle for the group's timeout after its replicas went.

A minute misses its SLO when some tick in it had less capacity than load (replicas ready x
measured rate) or a scale-up still waiting: on Serve's upscale delay, on nodes, or on
replicas to start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.load_curve import DiurnalCurve
from cluster.node_packing import Demand, nodes_for
from cluster.node_types import NodeType
from cluster.scaling_rules import NodePool, PoolRule, ServeScaler


@dataclass
class Loop:
    """One deployment (or the embedder pool) and the replicas it has.

    `copies` deployments scale alike (every shard-N sees the same load); `rate` is what one
    replica serves per second and `latency_s` a request's time in it (None: unmeasured,
    held at its minimum); `load` picks its arrivals from (queries/s, pins/s).
    """

    name: str
    demand: Demand
    pool: str
    start_s: float
    rate: float | None
    latency_s: float
    max_ongoing: int
    load: str  # "qps" or "ingest"
    fraction: float = 1.0  # of that load reaching this deployment
    copies: int = 1
    serve: ServeScaler | None = None  # None: the actor pool's rule moves it
    bounds: tuple[int, int] = (1, 1)
    ready: int = 0
    starting: list[float] = field(default_factory=list)
    pending: int = 0
    backlog: float = 0.0  # requests (or pins) that arrived beyond capacity, not yet served

    @property
    def placed(self) -> int:
        """Replicas on a node: serving or starting."""
        return self.ready + len(self.starting)

    def capacity(self) -> float:
        """Requests (or pins) per second the ready replicas serve."""
        return self.ready * (self.rate or 0.0)

    def resize(self, target: int) -> None:
        """Ask for `target` replicas: new ones pending; surplus ones go, unstarted first."""
        more = target - self.placed - self.pending
        if more >= 0:
            self.pending += more
            return
        cut = min(self.pending, -more)
        self.pending, more = self.pending - cut, more + cut
        cut = min(len(self.starting), -more)
        self.starting, more = self.starting[: len(self.starting) - cut], more + cut
        self.ready += more


@dataclass(frozen=True)
class Minute:
    """The state at the end of one minute, and whether it kept the SLO."""

    qps: float
    ingest: float
    replicas: dict[str, int]
    nodes: dict[str, int]
    short: bool  # capacity below load at some tick
    waiting: bool  # a scale-up waited on nodes or on starting replicas


def simulate(
    curve: DiurnalCurve,
    loops: list[Loop],
    pools: dict[str, tuple[NodePool, NodeType]],
    pool_rule: PoolRule,
    tick_s: float = 10.0,
    warm_up_days: int = 1,
) -> list[Minute]:
    """Replay `curve` through the loops' rules and the node pools, one tick at a time.

    The day is replayed `warm_up_days` times first, unrecorded, so that it starts from
    where the day before left replicas and nodes rather than from the minimum.
    """
    minutes: list[Minute] = []
    for loop in loops:  # start at the minimum, placed and ready
        loop.ready = loop.serve.target if loop.serve else loop.bounds[0]
    ticks, day = round(60 / tick_s), len(curve.qps)
    for step in range(day * (warm_up_days + 1)):
        m = step % day
        load = {"qps": curve.qps[m], "ingest": curve.ingest[m]}
        short = waiting = False
        for k in range(ticks):
            now = (step * ticks + k) * tick_s
            for loop in loops:
                _decide(loop, now, load[loop.load] * loop.fraction, tick_s, pool_rule)
            for name, (pool, node) in pools.items():
                mine = [loop for loop in loops if loop.pool == name]
                wanted = [
                    other.demand.with_count(other.copies * (other.placed + other.pending))
                    for other in mine
                ]
                pool.step(now, nodes_for(wanted, node))
                _place(mine, pool.ready, node, now)
            for loop in loops:
                started = [t for t in loop.starting if t <= now]
                loop.ready += len(started)
                loop.starting = loop.starting[len(started) :]
                arrivals = load[loop.load] * loop.fraction
                if loop.rate is not None and loop.capacity() < arrivals:
                    short = True
                deciding = loop.serve is not None and loop.serve.waiting_up
                waiting = waiting or deciding or loop.pending > 0 or bool(loop.starting)
        if step < day * warm_up_days:
            continue
        minutes.append(
            Minute(
                qps=load["qps"],
                ingest=load["ingest"],
                replicas={loop.name: loop.ready for loop in loops},
                nodes={name: pool.ready for name, (pool, _) in pools.items()},
                short=short,
                waiting=waiting,
            )
        )
    return minutes


def _decide(loop: Loop, now: float, arrivals: float, tick_s: float, rule: PoolRule) -> None:
    """Move the loop's target from its signal: Serve's ongoing requests or the pool's use."""
    if loop.rate is None:  # unmeasured: held where it is
        return
    served = loop.capacity() * tick_s
    loop.backlog = max(0.0, loop.backlog + arrivals * tick_s - served)
    if loop.serve is not None:
        ongoing = arrivals * loop.latency_s + loop.backlog  # Little's law, plus the queue
        if loop.backlog > 0:  # saturated: every replica holds its cap
            ongoing = max(ongoing, loop.ready * loop.max_ongoing)
        loop.resize(loop.serve.decide(now, ongoing))
        return
    capacity = loop.capacity() or loop.rate  # an empty pool counts one actor
    utilisation = (arrivals + loop.backlog / tick_s) / capacity
    actors = loop.placed + loop.pending
    loop.resize(rule(utilisation, actors, *loop.bounds))


def _place(loops: list[Loop], nodes: int, node: NodeType, now: float) -> None:
    """Place pending replicas, largest first, while the ready nodes hold them."""
    order = sorted(
        loops, key=lambda other: (other.demand.memory_bytes, other.demand.gpus), reverse=True
    )
    for loop in order:
        if loop.pending == 0:
            continue

        def fits(extra: int, loop: Loop = loop) -> bool:
            held = [
                other.demand.with_count(
                    other.copies * (other.placed + (extra if other is loop else 0))
                )
                for other in loops
            ]
            return nodes_for(held, node) <= nodes

        low, high = 0, loop.pending  # the most pending replicas that fit: binary search
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid) else (low, mid - 1)
        loop.pending -= low
        loop.starting += [now + loop.start_s] * low
