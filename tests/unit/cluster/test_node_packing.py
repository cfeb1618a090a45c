"""The node rule: how many nodes of a type hold a set of replicas."""

from __future__ import annotations

import pytest

from cluster.exceptions import ClusterError
from cluster.node_packing import Demand, nodes_for
from cluster.node_types import CPU_WORKER, GIB, GPU_WORKER, node_types

NODES = node_types()
CPU, GPU = NODES[CPU_WORKER], NODES[GPU_WORKER]
SHARD = Demand("shard", 0, cpus=4, memory_bytes=64 * GIB)


def test_shard_replicas_pack_seven_to_a_node_by_memory() -> None:
    assert nodes_for([SHARD.with_count(7)], CPU) == 1
    assert nodes_for([SHARD.with_count(8)], CPU) == 2
    assert nodes_for([SHARD.with_count(264_822)], CPU) == 37_832


def test_cpu_bound_replicas_pack_by_cpus() -> None:
    assert nodes_for([Demand("ingress", 61, cpus=1)], CPU) == 2
    assert nodes_for([Demand("ingress", 60, cpus=1)], CPU) == 1


def test_small_replicas_fill_the_room_large_ones_leave() -> None:
    # 7 shards leave 32 CPUs on the node; 40 ingress replicas take them and 8 more
    demands = [Demand("ingress", 40, cpus=1), SHARD.with_count(7)]
    assert nodes_for(demands, CPU) == 2
    # 3 x 7 shards leave 3 x 32 CPUs: 96 ingress replicas need no node of their own
    assert nodes_for([SHARD.with_count(21), Demand("ingress", 96, cpus=1)], CPU) == 3
    assert nodes_for([SHARD.with_count(21), Demand("ingress", 97, cpus=1)], CPU) == 4


def test_gpu_replicas_take_one_gpu_node_each() -> None:
    assert nodes_for([Demand("query-encoder", 16, cpus=4, gpus=1)], GPU) == 16
    assert nodes_for([Demand("query-encoder", 0, cpus=4, gpus=1)], GPU) == 0


def test_a_replica_that_fits_no_node_is_refused() -> None:
    with pytest.raises(ClusterError, match="query-encoder replica does not fit a cpu-worker"):
        nodes_for([Demand("query-encoder", 1, cpus=4, gpus=1)], CPU)
    with pytest.raises(ClusterError, match="replica count must be >= 0"):
        Demand("shard", -1, cpus=1)
