"""Assemble the Serve application: one deployment per shard, a query encoder, the ingress."""

from __future__ import annotations

from ray import serve
from ray.serve import Application

from conf.config import PinstreamConfig
from serve.ingress import Ingress
from serve.query_encoder import QueryEncoder
from serve.shard_replica import ShardReplica


def shard_deployment_name(shard: int) -> str:
    """The Serve deployment name of a shard."""
    return f"shard-{shard}"


def build_app(cfg: PinstreamConfig) -> Application:
    """The bound application for `serve.run` (the broker address must be resolved)."""
    if cfg.broker.is_local:
        raise ValueError("build_app needs a resolved bootstrap address, not 'local'")
    settings = cfg.serve
    shards = [
        serve.deployment(
            name=shard_deployment_name(shard),
            num_replicas=1,
            ray_actor_options={"num_cpus": settings.shard_num_cpus},
        )(ShardReplica).bind(cfg, shard)
        for shard in range(cfg.shards.count)
    ]
    encoder = serve.deployment(
        name="query-encoder",
        num_replicas=1,
        ray_actor_options={"num_cpus": settings.encoder_num_cpus},
    )(QueryEncoder).bind(cfg.model, settings)
    ingress = serve.deployment(
        name="ingress",
        num_replicas=1,
        ray_actor_options={"num_cpus": settings.ingress_num_cpus},
    )(Ingress)
    return ingress.bind(cfg, encoder, shards)
