"""How many replicas each shard deployment runs now, from Serve's own status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ray import serve

from serve.generation import shard_deployment_name

log = logging.getLogger(__name__)
RUNNING = "RUNNING"


def multi_replica_shards(app_name: str, shard_count: int) -> frozenset[int]:
    """The shards of application `app_name` that run 2 or more replicas (none when Serve's
    status cannot be read: hedging then waits for the next look)."""
    try:
        application = serve.status().applications.get(app_name)
    except Exception as exc:  # the controller is away for a moment; try at the next look
        log.warning("serve status unreadable, shard hedging paused: %r", exc)
        return frozenset()
    if application is None:
        return frozenset()
    shards = set()
    for shard in range(shard_count):
        deployment = application.deployments.get(shard_deployment_name(shard))
        if deployment is not None and _running(deployment.replica_states) >= 2:
            shards.add(shard)
    return frozenset(shards)


def _running(replica_states: Mapping[Any, int]) -> int:
    # Typed as ReplicaState keys; Serve's status fills them with the states' string values.
    return sum(n for s, n in replica_states.items() if getattr(s, "value", s) == RUNNING)
