"""Ray Serve's own data path for each `serve.throughput_mode`: the environment Ray reads when
its processes start, and the handle options that follow from it."""

from __future__ import annotations

import os
from typing import Any

from conf.config import ServeConfig, ThroughputMode

# Ray Serve's switches for each `serve.throughput_mode`. Ray reads them when its processes
# start, so they belong in the environment of the Ray cluster (the stack sets them before it
# starts the local Ray; a KubeRay cluster sets them in its pods).
SERVE_ENVIRONMENT: dict[ThroughputMode, dict[str, str]] = {
    "plain": {},
    "optimized": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "haproxy": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"},
}


def handle_options(mode: ThroughputMode) -> dict[str, Any]:
    """Options of the ingress's handles in `mode`. Serve takes a handle's transport from the
    environment of the process that made the handle: handles bound into the app are made by
    whoever deploys it (the CLI, a test, a benchmark), maybe without the switches, so the
    ingress sets gRPC on them itself where the mode has it."""
    return {"_by_reference": False} if SERVE_ENVIRONMENT[mode] else {}


# In both fast modes ingress replicas take HTTP themselves ("direct ingress"), and a stopping
# one goes on answering this long first (Ray's default 30 s), for a load balancer in front
# to take it out; `serve.ingress_drain_s` sets it.
DRAIN_VARIABLE = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"


def serve_environment(settings: ServeConfig) -> dict[str, str]:
    """The environment Ray's processes need for these Serve settings: the switches of
    `serve.throughput_mode` and, where ingress replicas take HTTP, their drain period."""
    switches = SERVE_ENVIRONMENT[settings.throughput_mode]
    return switches | {DRAIN_VARIABLE: f"{settings.ingress_drain_s:g}"} if switches else {}


def use_serve_environment(settings: ServeConfig) -> None:
    """Put `serve_environment(settings)` in this process's environment, for the Ray it starts
    next (its workers inherit it). A variable the user set already is left as it is."""
    for name, value in serve_environment(settings).items():
        os.environ.setdefault(name, value)
