"""Caps read from the shipped manifests, and plans over them named."""

from __future__ import annotations

from cluster.node_types import node_types
from cluster.replica_caps import (
    CPU_NODES,
    SHARD_REPLICAS,
    SHARDS,
    over_caps,
    replica_caps,
)
from conf.config import load_config
from tests.unit.cluster.manifests import (
    PRODUCTION_CONFIG,
    ray_cluster_specs,
    serve_config_v2,
    worker_groups,
)


def test_caps_are_the_manifests_values() -> None:
    caps = {(c.quantity, c.limit) for c in replica_caps(node_types())}
    production = load_config(PRODUCTION_CONFIG)
    assert (SHARDS, production.shards.count) in caps
    assert (SHARD_REPLICAS, production.serve.shard_scaling.max_replicas) in caps
    groups = worker_groups(ray_cluster_specs()["rayservice"])
    assert (CPU_NODES, groups["cpu-worker"]["maxReplicas"]) in caps
    assert (CPU_NODES, node_types()["cpu-worker"].max_workers) in caps
    assert len(serve_config_v2()["applications"]) == 1


def test_a_count_over_a_cap_is_named_with_its_source() -> None:
    caps = replica_caps(node_types())
    most = load_config(PRODUCTION_CONFIG).serve.shard_scaling.max_replicas
    (line,) = over_caps(SHARD_REPLICAS, 13_938, caps)
    assert line == (
        "replicas per shard: needs 13,938, cluster/kuberay/rayservice.yaml serveConfigV2: "
        f"shard-N max_replicas allows {most}"
    )
    assert over_caps(SHARD_REPLICAS, most, caps) == []
    assert over_caps(SHARD_REPLICAS, None, caps) == []
