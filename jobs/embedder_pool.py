"""The embedder actor pool as the ingest driver steers it: the one module that touches Ray Data
internals.

Why it must: Ray Data 2.60 has no public API to resize the actor pool of a running
execution. Its actor autoscaler (`ray.data._internal.actor_autoscaler`; the backlog-aware one
by default) moves a pool between the ActorPoolStrategy's min_size and max_size on utilisation
alone, and those bounds are fixed when the execution starts, while the ingest job runs one
execution for as long as it lives. The streaming executor runs in the driver process, so
the driver can share an object with it: an execution callback (the public DataContext hook
`custom_execution_callback_classes`) replaces, before the execution starts, the
executor's actor autoscaler with a subclass of Ray's own that keeps the embedder pool at or
above a floor the driver sets (jobs/pool_scaling.py decides it), as a raised min_size would,
and reports the pool's size and its last move back. Every other pool, and every decision
above the floor, stays Ray's, but for one correction.

The correction: Ray Data grows a pool on its utilisation at the instant of each scheduling
step (tasks in flight over actor slots, grown at >= 1.75 of 2 slots per actor). An idle
ingest stream still sends an empty batch per partition every second (streams/kafka_source.py),
and two of them in one actor's slots for an instant make a pool of one "full": Ray adds an
actor, which loads the model, and refuses to shrink for 10 s after growing, so an idle pool
never settles at its minimum and keeps starting actors. No setting tells the two apart (the
threshold must stay <= the slots per actor for the pool to grow at all), so Ray's own
requests to grow are let through only once batches have waited in the embedder's input
queue at every step for `backlog_delay_s` while actors were running: a backlog, in the
pool's own terms.

What it relies on (tests/unit/jobs/test_embedder_pool.py fails when any of it changes): the
executor's `_actor_autoscaler`, `_topology`, `_resource_manager` and `_data_context`;
`BacklogAwareActorAutoscaler(topology, resource_manager, config=...)`, its
`_derive_target_scaling_config(actor_pool, op, op_state)` and a `try_trigger_scaling` that
applies one request per pool; `ActorPoolScalingRequest`; the operator state's
`total_enqueued_input_blocks()`; and the pool's `scale`, `current_size`,
`num_running_actors`, `num_pending_actors`, `min_size` and `max_size`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ray.data._internal.actor_autoscaler import (
    ActorPoolScalingRequest,
    AutoscalingActorPool,
    BacklogAwareActorAutoscaler,
)
from ray.data._internal.execution.execution_callback import ExecutionCallback


@dataclass(frozen=True)
class PoolSize:
    """Actors of the pool: running (model loaded, taking batches) and pending (starting)."""

    running: int = 0
    pending: int = 0


@dataclass(frozen=True)
class PoolMove:
    """One resize Ray Data applied to the pool: actors added (> 0) or removed, why, when."""

    delta: int
    reason: str
    at: float  # epoch seconds


class EmbedderPool:
    """Shared by the driver (sets the floor, reads the size) and the executor's thread (keeps
    the floor, writes the size); each field is replaced whole, so either side reads a value
    the other wrote completely."""

    def __init__(self, operator: str, min_size: int, max_size: int, backlog_delay_s: float) -> None:
        self.operator = operator  # the Ray Data operator's name, e.g. "MapBatches(Embedder)"
        self.min_size, self.max_size = min_size, max_size
        self.backlog_delay_s = backlog_delay_s
        self.floor = min_size
        self.size = PoolSize()
        self.last_move: PoolMove | None = None

    def set_floor(self, floor: int) -> None:
        """Keep at least `floor` actors (within the pool's bounds) from the next step on."""
        self.floor = min(max(floor, self.min_size), self.max_size)

    def callback(self) -> type[ExecutionCallback]:
        """The execution callback class that makes an execution keep this pool's floor (Ray
        Data builds callbacks from their class, without arguments)."""
        pool = self

        class KeepFloor(ExecutionCallback):
            def before_execution_starts(self, executor: Any) -> None:
                executor._actor_autoscaler = _FlooredAutoscaler(executor, pool)

        return KeepFloor

    def _observe(
        self,
        actor_pool: AutoscalingActorPool,
        request: ActorPoolScalingRequest,
        applied: int | None,
    ) -> None:
        self.size = PoolSize(actor_pool.num_running_actors(), actor_pool.num_pending_actors())
        if applied:
            self.last_move = PoolMove(applied, request.reason or "", time.time())


class _FlooredAutoscaler(BacklogAwareActorAutoscaler):
    """Ray Data's default actor autoscaler, with a floor under one pool."""

    def __init__(self, executor: Any, pool: EmbedderPool) -> None:
        super().__init__(
            executor._topology,
            executor._resource_manager,
            config=executor._data_context.autoscaling_config,
        )
        self._pool = pool
        self._waiting_since: float | None = None  # batches queued for the pool at every step

    def try_trigger_scaling(self) -> None:
        for op, state in self._topology.items():
            for actor_pool in op.get_autoscaling_actor_pools():
                request = self._derive_target_scaling_config(actor_pool, op, state)
                if op.name != self._pool.operator:
                    actor_pool.scale(request)
                    continue
                now = time.monotonic()
                # Batches queued while no actor runs (the first one loading its model) say
                # nothing about the pool's capacity: they are taken at once when it is ready.
                if state.total_enqueued_input_blocks() == 0 or not actor_pool.num_running_actors():
                    self._waiting_since = None
                elif self._waiting_since is None:
                    self._waiting_since = now
                backlog = (
                    self._waiting_since is not None
                    and now - self._waiting_since >= self._pool.backlog_delay_s
                )
                request = steered(
                    request,
                    actor_pool.current_size(),
                    actor_pool.min_size(),
                    actor_pool.max_size(),
                    self._pool.floor,
                    backlog,
                )
                self._pool._observe(actor_pool, request, actor_pool.scale(request))


def steered(
    request: ActorPoolScalingRequest,
    size: int,
    min_size: int,
    max_size: int,
    floor: int,
    backlog: bool,
) -> ActorPoolScalingRequest:
    """Ray's request for a pool of `size` actors, changed so that the pool keeps `floor` and
    grows above it only on a lasting `backlog` (see the module docstring)."""
    if request.force:  # the execution is ending: Ray releases every actor
        return request
    floor = min(max(floor, min_size), max_size)
    if size < floor and not (backlog and size + request.delta > floor):
        return ActorPoolScalingRequest.upscale(
            delta=floor - size, reason=f"below the job's floor of {floor} actors"
        )
    if request.delta > 0 and not backlog:
        return ActorPoolScalingRequest.no_op(reason=f"no lasting backlog ({request.reason})")
    if request.delta < 0 and size + request.delta < floor:
        if size > floor:
            return ActorPoolScalingRequest.downscale(delta=floor - size, reason=request.reason)
        return ActorPoolScalingRequest.no_op(
            reason=f"at the job's floor of {floor} actors ({request.reason})"
        )
    return request
