"""The Ray resources each kind of replica reserves, as the deployment files set them.

Shard replicas take theirs from the RayService's `ray_actor_options` (which replace the
code's: the shard's CPUs and its 64 GiB memory reservation); the ingress, the query
encoder and the embedder actors take theirs from the production config (`serve.*_num_*`,
`ingest.embedder_num_*`), as the code that builds them does. The node rule
(`cluster/node_packing.py`) packs these onto node types.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cluster.exceptions import ClusterError
from cluster.manifest_patch import SHARD
from cluster.node_packing import Demand
from conf.config import PinstreamConfig, load_config

PRODUCTION_CONFIG = Path(__file__).parent / "pinstream.yaml"
INGRESS, ENCODER, EMBEDDER = "ingress", "query-encoder", "embedder"


def replica_demands(rayservice: str, cfg: PinstreamConfig | None = None) -> dict[str, Demand]:
    """One `Demand` (count 0) per kind of replica: shard, ingress, query-encoder, embedder."""
    cfg = cfg or load_config(PRODUCTION_CONFIG)
    try:
        service = yaml.safe_load(rayservice)
        (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
        (shard,) = [d for d in app["deployments"] if d["name"] == "shard-0"]
        options = shard["ray_actor_options"]
        shard_cpus, shard_memory = float(options["num_cpus"]), float(options.get("memory", 0))
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ClusterError(f"the RayService's shard-0 has no ray_actor_options: {exc!r}") from exc
    serve, ingest = cfg.serve, cfg.ingest
    return {
        SHARD: Demand(SHARD, 0, shard_cpus, 0.0, shard_memory),
        INGRESS: Demand(INGRESS, 0, serve.ingress_num_cpus),
        ENCODER: Demand(ENCODER, 0, serve.encoder_num_cpus, serve.encoder_num_gpus),
        EMBEDDER: Demand(EMBEDDER, 0, ingest.embedder_num_cpus, ingest.embedder_num_gpus),
    }
