"""What the deployment files let pinstream scale to: the caps a plan is checked against.

The RayService (`cluster/kuberay/rayservice.yaml`) deploys one Serve deployment per shard
(shard-0 .. shard-{n-1}, as many as `shards.count` of `cluster/pinstream.yaml`; a test
checks they agree), each autoscaling up to its `max_replicas`, and worker groups that the
Ray autoscaler grows up to `maxReplicas` pods; the ingest RayCluster has its own GPU group;
the cluster launcher (`cluster/launcher/aws.yaml`) caps each node type at `max_workers`.
A plan that needs more than one of these says so: deploy it by raising the cap (or running
cells, docs/scaling.md), not by hoping the autoscaler finds room.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster.exceptions import ClusterError
from cluster.node_types import (
    CPU_WORKER,
    GPU_WORKER,
    LAUNCHER_CONFIG,
    NodeType,
    load_launcher_config,
)

KUBERAY = Path(__file__).parent / "kuberay"
RAYSERVICE = KUBERAY / "rayservice.yaml"
RAYCLUSTER_INGEST = KUBERAY / "raycluster-ingest.yaml"

SHARDS = "shards"
SHARD_REPLICAS = "replicas per shard"
INGRESS_REPLICAS = "ingress replicas"
ENCODER_REPLICAS = "query-encoder replicas"
CPU_NODES = f"{CPU_WORKER} nodes (serving)"
GPU_NODES = f"{GPU_WORKER} nodes (serving)"
INGEST_GPU_NODES = f"{GPU_WORKER} nodes (ingest)"


@dataclass(frozen=True)
class Cap:
    """The most of one quantity a deployment file allows, and where it says so."""

    quantity: str
    limit: int
    source: str


def replica_caps(
    nodes: dict[str, NodeType], rayservice: Path = RAYSERVICE, ingest: Path = RAYCLUSTER_INGEST
) -> list[Cap]:
    """Every cap of the RayService, the ingest RayCluster and the launcher's node types."""
    service = load_launcher_config(rayservice, "RayService manifest")
    try:
        serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
        (app,) = serve_config["applications"]
        deployments = {d["name"]: d for d in app["deployments"]}
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ClusterError(f"{rayservice}: cannot read the Serve deployments ({exc})") from exc
    shards = {name: d for name, d in deployments.items() if name.startswith("shard-")}
    where = f"{_shown(rayservice)} serveConfigV2"
    caps = [Cap(SHARDS, len(shards), f"{where}: shard-0..shard-{len(shards) - 1}")]
    if shards:
        most = min(_max_replicas(d, rayservice) for d in shards.values())
        caps.append(Cap(SHARD_REPLICAS, most, f"{where}: shard-N max_replicas"))
    for name, quantity in (("ingress", INGRESS_REPLICAS), ("query-encoder", ENCODER_REPLICAS)):
        if name in deployments:
            limit = _max_replicas(deployments[name], rayservice)
            caps.append(Cap(quantity, limit, f"{where}: {name} max_replicas"))
    groups = _worker_groups(service["spec"].get("rayClusterConfig"), rayservice)
    groups_ingest = _worker_groups(
        load_launcher_config(ingest, "RayCluster manifest")["spec"], ingest
    )
    for group, quantity, found, path in (
        (CPU_WORKER, CPU_NODES, groups, rayservice),
        (GPU_WORKER, GPU_NODES, groups, rayservice),
        (GPU_WORKER, INGEST_GPU_NODES, groups_ingest, ingest),
    ):
        if group in found:
            caps.append(Cap(quantity, found[group], f"{_shown(path)}: {group} maxReplicas"))
    for group, quantity in ((CPU_WORKER, CPU_NODES), (GPU_WORKER, GPU_NODES)):
        if group in nodes and nodes[group].max_workers:
            source = f"{_shown(LAUNCHER_CONFIG)}: {group} max_workers"
            caps.append(Cap(quantity, nodes[group].max_workers, source))
    return caps


def over_caps(quantity: str, needed: int | None, caps: list[Cap]) -> list[str]:
    """One line per cap on `quantity` that `needed` exceeds."""
    if needed is None:
        return []
    return [
        f"{quantity}: needs {needed:,}, {cap.source} allows {cap.limit:,}"
        for cap in caps
        if cap.quantity == quantity and needed > cap.limit
    ]


def _max_replicas(deployment: dict[str, Any], path: Path) -> int:
    try:
        return int(deployment["autoscaling_config"]["max_replicas"])
    except (KeyError, TypeError, ValueError) as exc:
        name = deployment.get("name")
        raise ClusterError(f"{path}: deployment {name} has no autoscaling max_replicas") from exc


def _worker_groups(spec: Any, path: Path) -> dict[str, int]:
    try:
        return {g["groupName"]: int(g["maxReplicas"]) for g in spec["workerGroupSpecs"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise ClusterError(f"{path}: worker groups need groupName and maxReplicas") from exc


def _shown(path: Path) -> str:
    """The path from the repository root where it is inside it."""
    root = Path(__file__).resolve().parents[1]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)
