"""Assemble the Serve application: one deployment per shard, a query encoder, the ingress."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from conf.config import PinstreamConfig, ServeConfig
from serve.generation import ENCODER_DEPLOYMENT, INGRESS_DEPLOYMENT, shard_deployment_name
from serve.ingress import Ingress
from serve.query_encoder import QueryEncoder
from serve.shard_replica import ShardReplica


def shard_scaling(settings: ServeConfig) -> dict[str, Any]:
    """Replica options of a shard deployment: a fixed count, or Serve autoscaling in [min, max]."""
    scaling = settings.shard_scaling
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
        num_replicas=1,
        max_ongoing_requests=settings.ingress_max_ongoing_requests,
        ray_actor_options={"num_cpus": settings.ingress_num_cpus},
    )(serve.ingress()(Ingress))
    return ingress.bind(cfg, encoder, shards)


def build_generation_app(cfg: PinstreamConfig) -> Application:
    """Another warm generation beside the ingress's own (cfg from `cfg.for_generation`): its
    shards and query encoder, deployed as application `generation_app_name(...)` without an
    HTTP route; the ingress reaches them by name when the traffic policy names it."""
    encoder, shards = _generation_deployments(cfg)
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
            **shard_scaling(settings),
        )(ShardReplica).bind(cfg, shard)
        for shard in range(cfg.shards.count)
    ]
    encoder = serve.deployment(
        name=ENCODER_DEPLOYMENT,
        num_replicas=1,
        # Enough requests in flight to fill a batch, and the next one while it runs.
        max_ongoing_requests=2 * settings.encoder_max_batch_size,
        ray_actor_options={
            "num_cpus": settings.encoder_num_cpus,
            "num_gpus": settings.encoder_num_gpus,
        },
    )(QueryEncoder).bind(cfg.model, settings)
    return encoder, shards
