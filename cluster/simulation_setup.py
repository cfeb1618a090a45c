"""The simulated deployment: one loop per deployment and the embedder pool, one pool per group.

Built from a capacity plan (its index, shard size and fan-out), the benchmark figures it
read, the KubeRay manifests and the production config: the same files the system deploys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from cluster.bench_results import BenchFigures
from cluster.manifest_patch import SHARD, read_bounds
from cluster.node_types import CPU_WORKER, GPU_WORKER, NodeType
from cluster.planner import CPU_SERVING, Plan
from cluster.replica_caps import KUBERAY
from cluster.replica_resources import EMBEDDER, ENCODER, INGRESS, replica_demands
from cluster.scaling_rules import NodePool, PoolRule, ServeRule, ServeScaler, pool_rule
from cluster.scaling_simulation import Loop
from cluster.simulation_inputs import (
    SimulationAssumptions,
    autoscaling,
    deployments,
    gpu_rate,
    idle_timeout,
    ingress_rate,
    pipeline_ratio,
    pool_thresholds,
    shard_rate,
)
from conf.config import PinstreamConfig

SERVING_CPU, SERVING_GPU, INGEST_GPU = (
    f"{CPU_WORKER} (serving)",
    f"{GPU_WORKER} (serving)",
    f"{GPU_WORKER} (ingest)",
)
POOLS = {SERVING_CPU: ("serving", CPU_WORKER), SERVING_GPU: ("serving", GPU_WORKER)}
POOLS[INGEST_GPU] = ("ingest", GPU_WORKER)


@dataclass
class Deployment:
    """What `simulate` runs, and where each input came from."""

    loops: list[Loop]
    pools: dict[str, tuple[NodePool, NodeType]]
    pool_rule: PoolRule
    notes: list[str]


def deployment(
    plan: Plan,
    figures: BenchFigures,
    nodes: dict[str, NodeType],
    cfg: PinstreamConfig,
    a: SimulationAssumptions,
    manifests: Path = KUBERAY,
) -> Deployment:
    """The loops and node pools of the manifests under `manifests`, at the plan's rates."""
    service = (manifests / "rayservice.yaml").read_text(encoding="utf-8")
    ingest = (manifests / "raycluster-ingest.yaml").read_text(encoding="utf-8")
    bounds, served, demands = (
        read_bounds(service, ingest),
        deployments(service),
        replica_demands(service, cfg),
    )
    cpu_plan = plan.serving[CPU_SERVING]
    vectors = math.ceil(plan.target.pins / bounds.shards)
    ratio = pipeline_ratio(figures)
    serve = cfg.serve
    encoder = (serve.encoder_max_batch_size, serve.encoder_batch_wait_s, 1.0)
    rates = {
        SHARD: shard_rate(figures, plan.index, vectors, plan.target.nprobe),
        INGRESS: ingress_rate(figures),
        ENCODER: gpu_rate(figures, "query_encoder_qps_per_gpu", *encoder),
        EMBEDDER: gpu_rate(
            figures, "embed_sentences_per_s_per_gpu", cfg.model.batch_size, 0, ratio
        ),
    }
    notes = [rate.basis for rate in rates.values()]
    if cpu_plan.shards.value != bounds.shards:
        needs = cpu_plan.shards.show()
        notes.append(f"the manifests deploy {bounds.shards} shards, the plan needs {needs}")

    def serve_loop(name: str, deployed: str, pool: str, fraction: float, start_s: float) -> Loop:
        d = served[deployed]
        rule = ServeRule(
            **{k: v for k, v in autoscaling(d).items() if k in ServeRule.__dataclass_fields__}
        )
        return Loop(
            name=name, demand=demands[name], pool=pool, start_s=start_s,
            rate=rates[name].per_replica, latency_s=rates[name].latency_s,
            max_ongoing=int(d["max_ongoing_requests"]), load="qps", fraction=fraction,
            copies=bounds.shards if name == SHARD else 1, serve=ServeScaler(rule),
            bounds=(rule.min_replicas, rule.max_replicas),
        )  # fmt: skip

    text = plan.assumptions.text_query_fraction
    loops = [
        serve_loop(INGRESS, INGRESS, SERVING_CPU, 1.0, a.replica_start_s),
        serve_loop(ENCODER, ENCODER, SERVING_GPU, text, a.replica_start_s),
        serve_loop(SHARD, "shard-0", SERVING_CPU, cpu_plan.fan_out.fraction, a.shard_start_s),
        Loop(
            name=EMBEDDER, demand=demands[EMBEDDER], pool=INGEST_GPU, start_s=a.replica_start_s,
            rate=rates[EMBEDDER].per_replica, latency_s=rates[EMBEDDER].latency_s,
            max_ongoing=1, load="ingest",
            bounds=(cfg.ingest.embedders_min, cfg.ingest.embedders_max),
        ),
    ]  # fmt: skip
    notes += [
        f"{loop.name} held at {loop.bounds[0]}: unmeasured" for loop in loops if loop.rate is None
    ]
    specs = {
        "serving": yaml.safe_load(service)["spec"]["rayClusterConfig"],
        "ingest": yaml.safe_load(ingest)["spec"],
    }
    pools = {}
    for label, (cluster, group) in POOLS.items():
        low, high = bounds.groups[(cluster, group)]
        (spec,) = [g for g in specs[cluster]["workerGroupSpecs"] if g["groupName"] == group]
        timeout = idle_timeout(specs[cluster], spec)
        pools[label] = (NodePool(label, low, high, timeout, a.node_boot_s), nodes[group])
        notes.append(f"{label}: {low}..{high} nodes, idle timeout {timeout:g} s")
    up, down = pool_thresholds(yaml.safe_load(ingest))
    notes.append(f"embedder pool: +1 actor at utilisation >= {up:g}, -1 at <= {down:g}")
    return Deployment(loops, pools, pool_rule(up, down), notes)
