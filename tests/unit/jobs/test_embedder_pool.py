"""The embedder pool's floor: the request rule, and the Ray Data internals it stands on.

The second half fails loudly when Ray Data's internals change under jobs/embedder_pool.py
(a Ray upgrade): read that module's docstring, then Ray's actor autoscaler, before
changing these checks.
"""

from __future__ import annotations

import dataclasses
import inspect

from ray.data import DataContext
from ray.data._internal.actor_autoscaler import (
    ActorPoolScalingRequest,
    AutoscalingActorPool,
    BacklogAwareActorAutoscaler,
    DefaultActorAutoscaler,
)
from ray.data._internal.execution.execution_callback import ExecutionCallback
from ray.data._internal.execution.operators.actor_pool_map_operator import _ActorPool
from ray.data._internal.execution.streaming_executor import StreamingExecutor
from ray.data._internal.execution.streaming_executor_state import OpState

from jobs.embedder_pool import EmbedderPool, _FlooredAutoscaler, steered

UTIL_UP = ActorPoolScalingRequest.upscale(delta=1, reason="utilization of 2.0 >= 1.75")
UTIL_DOWN = ActorPoolScalingRequest.downscale(delta=-1, reason="utilization of 0.0 <= 0.5")
NO_OP = ActorPoolScalingRequest.no_op(reason="w/in limits")


def test_below_the_floor_the_pool_grows_to_it_whatever_ray_asked() -> None:
    for request in (NO_OP, UTIL_DOWN, UTIL_UP):
        got = steered(request, size=1, min_size=1, max_size=4, floor=3, backlog=False)
        assert got.delta == 2 and "floor of 3" in (got.reason or "")


def test_a_larger_request_of_ray_passes_on_a_backlog_only() -> None:
    big = ActorPoolScalingRequest.upscale(delta=3, reason="utilization of 2.0 >= 1.75")
    assert steered(big, size=1, min_size=1, max_size=4, floor=2, backlog=True) is big
    floor = steered(big, size=1, min_size=1, max_size=4, floor=2, backlog=False)
    assert floor.delta == 1 and "floor of 2" in (floor.reason or "")


def test_ray_grows_the_pool_above_the_floor_only_on_a_lasting_backlog() -> None:
    assert steered(UTIL_UP, size=1, min_size=1, max_size=4, floor=1, backlog=True) is UTIL_UP
    held = steered(UTIL_UP, size=1, min_size=1, max_size=4, floor=1, backlog=False)
    assert held.delta == 0 and "no lasting backlog" in (held.reason or "")


def test_ray_shrinks_the_pool_down_to_the_floor_not_below() -> None:
    assert steered(UTIL_DOWN, size=3, min_size=1, max_size=4, floor=2, backlog=False) is UTIL_DOWN
    at_floor = steered(UTIL_DOWN, size=2, min_size=1, max_size=4, floor=2, backlog=False)
    assert at_floor.delta == 0 and "floor of 2" in (at_floor.reason or "")
    two_down = ActorPoolScalingRequest.downscale(delta=-2, reason="over budget")
    assert steered(two_down, size=3, min_size=1, max_size=4, floor=2, backlog=False).delta == -1


def test_the_floor_stays_in_the_pool_bounds_and_an_ending_execution_releases_all() -> None:
    got = steered(NO_OP, size=1, min_size=1, max_size=2, floor=5, backlog=False)
    assert got.delta == 1
    ending = ActorPoolScalingRequest.downscale(delta=-3, force=True, reason="consumed all inputs")
    assert steered(ending, size=3, min_size=1, max_size=4, floor=3, backlog=False) is ending
    pool = EmbedderPool("MapBatches(Embedder)", min_size=2, max_size=4, backlog_delay_s=1.0)
    pool.set_floor(9)
    assert pool.floor == 4
    pool.set_floor(0)
    assert pool.floor == 2


def test_the_callback_is_built_without_arguments_by_the_planner_from_the_context() -> None:
    pool = EmbedderPool("MapBatches(Embedder)", min_size=1, max_size=2, backlog_delay_s=1.0)
    context = DataContext()
    context.custom_execution_callback_classes.append(pool.callback())
    made = [cls() for cls in context.execution_callback_classes]  # as Ray's planner does
    assert any(type(c).__name__ == "KeepFloor" for c in made)
    assert all(isinstance(c, ExecutionCallback) for c in made)
    # The planner reads the classes from the plan's context; a dataset's context is a copy.
    planner = inspect.getsource(
        __import__("ray.data._internal.planner.planner", fromlist=["Planner"]).Planner.plan
    )
    assert "cls() for cls in logical_plan.context.execution_callback_classes" in planner


def test_ray_data_internals_the_floor_relies_on_are_as_they_were() -> None:
    # The executor builds its topology, resource manager and actor autoscaler, then calls
    # the callbacks, then starts its scheduling thread, which asks the autoscaler each step.
    execute = inspect.getsource(StreamingExecutor.execute)
    order = [
        "self._topology = build_streaming_topology(",
        "self._resource_manager = ResourceManager(",
        "self._actor_autoscaler = create_actor_autoscaler(",
        "config=self._data_context.autoscaling_config",
        "callback.before_execution_starts(self)",
        "self.start()",
    ]
    assert all(line in execute for line in order), [s for s in order if s not in execute]
    assert [execute.index(line) for line in order] == sorted(execute.index(s) for s in order)
    assert "self._actor_autoscaler.try_trigger_scaling()" in inspect.getsource(
        StreamingExecutor._scheduling_loop_step
    )
    # _FlooredAutoscaler.try_trigger_scaling repeats Ray's loop: one request per pool, applied.
    ray_loop = inspect.getsource(DefaultActorAutoscaler.try_trigger_scaling)
    assert "op.get_autoscaling_actor_pools()" in ray_loop
    assert "self._derive_target_scaling_config(actor_pool, op, state)" in ray_loop
    assert issubclass(_FlooredAutoscaler, BacklogAwareActorAutoscaler)
    assert list(inspect.signature(DefaultActorAutoscaler.__init__).parameters) == [
        "self",
        "topology",
        "resource_manager",
        "config",
    ]
    assert list(
        inspect.signature(BacklogAwareActorAutoscaler._derive_target_scaling_config).parameters
    ) == ["self", "actor_pool", "op", "op_state"]
    assert [f.name for f in dataclasses.fields(ActorPoolScalingRequest)] == [
        "delta",
        "force",
        "reason",
    ]
    for method in ("scale", "current_size", "num_running_actors", "num_pending_actors"):
        assert callable(getattr(AutoscalingActorPool, method)), method
    for method in ("min_size", "max_size"):
        assert callable(getattr(AutoscalingActorPool, method)), method
    assert callable(OpState.total_enqueued_input_blocks)
    # The 10 s during which Ray refuses to shrink a pool it grew (jobs/embedder_pool.py,
    # docs/autoscaling.md).
    assert _ActorPool._ACTOR_POOL_SCALE_DOWN_DEBOUNCE_PERIOD_S == 10
