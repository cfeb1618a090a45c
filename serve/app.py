"""Assemble the Serve application: one deployment per shard, a query encoder, the ingress."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import AutoscalingConfig
from ray.serve.handle import DeploymentHandle

from conf.config import PinstreamConfig
from serve.generation import ENCODER_DEPLOYMENT, INGRESS_DEPLOYMENT, shard_deployment_name
from serve.ingress import Ingress
from serve.query_encoder import QueryEncoder
from serve.shard_replica import ShardReplica


def replica_scaling(scaling: AutoscalingConfig) -> dict[str, Any]:
    """Replica options of a deployment: a fixed count, or Serve autoscaling in [min, max]."""
    if scaling.max_replicas == scaling.min_replicas:
        return {"num_replicas": scaling.min_replicas}
    return {"num_replicas": "auto", "autoscaling_config": scaling}


def build_app(cfg: PinstreamConfig) -> Application:
    """The bound application for `serve.run`: the ingress over this config's generation (the
    broker address must be resolved)."""
    encoder, shards = _generation_deployments(cfg)
    settings = cfg.serve
    ingress = serve.deployment(
        name=INGRESS_DEPLOYMENT,
        max_ongoing_requests=settings.ingress_max_ongoing_requests,
        ray_actor_options={"num_cpus": settings.ingress_num_cpus},
        **replica_scaling(settings.ingress_scaling),
    )(serve.ingress()(Ingress))
    return ingress.bind(cfg, encoder, shards)


def build_generation_app(cfg: PinstreamConfig) -> Application:
    """Another warm generation beside the ingress's own (cfg from `cfg.for_generation`): its
    shards and query encoder, deployed as application `generation_app_name(...)` without an
    HTTP route; the ingress reaches them by name when the traffic policy names it."""
    encoder, shards = _generation_deployments(cfg)
    # The root takes no requests (nobody calls it), so one replica at no CPU is all it needs;
    # its encoder and shards scale as the config says, like the primary generation's.
    root = serve.deployment(name="generation", num_replicas=1, ray_actor_options={"num_cpus": 0})(
        GenerationRoot
    )
    return root.bind(cfg.model.generation, encoder, shards)


class GenerationRoot:
    """The root of a generation's application: binding the shards and the encoder to it is
    what keeps them deployed; the ingress calls them directly."""

    def __init__(self, generation: str, encoder: DeploymentHandle, shards: list[Any]) -> None:
        self.generation = generation


def _generation_deployments(cfg: PinstreamConfig) -> tuple[Application, list[Application]]:
    """The query encoder and shard deployments of cfg's generation, bound."""
    if cfg.broker.is_local:
        raise ValueError("the Serve app needs a resolved bootstrap address, not 'local'")
    settings = cfg.serve
    shards = [
        serve.deployment(
            name=shard_deployment_name(shard),
            max_ongoing_requests=settings.shard_max_ongoing_requests,
            ray_actor_options={"num_cpus": settings.shard_num_cpus},
            **replica_scaling(settings.shard_scaling),
        )(ShardReplica).bind(cfg, shard)
        for shard in range(cfg.shards.count)
    ]
    encoder = serve.deployment(
        name=ENCODER_DEPLOYMENT,
        max_ongoing_requests=settings.encoder_max_ongoing_requests,
        ray_actor_options={
            "num_cpus": settings.encoder_num_cpus,
            "num_gpus": settings.encoder_num_gpus,
        },
        **replica_scaling(settings.encoder_scaling),
    )(QueryEncoder).bind(cfg.model, settings)
    return encoder, shards
