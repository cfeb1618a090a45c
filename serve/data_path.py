"""Ray Serve's own data path for each `serve.throughput_mode`: the environment switches Ray
reads when its processes start, and the handle options that follow from them."""

from __future__ import annotations

import os
from typing import Any

from conf.config import ThroughputMode

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


def use_throughput_mode(mode: ThroughputMode) -> None:
    """Put mode's Serve switches in this process's environment, for the Ray it starts next
    (its workers inherit it). A switch the user set already is left as it is."""
    for name, value in SERVE_ENVIRONMENT[mode].items():
        os.environ.setdefault(name, value)
