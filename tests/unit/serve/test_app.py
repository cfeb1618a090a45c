"""The bound application: deployments, their replica options and the FastAPI ingress."""

from __future__ import annotations

from ray.serve._private.build_app import build_app as build_serve_app

from conf.config import PinstreamConfig
from serve.app import build_app, replica_scaling


def config(**scaling: object) -> PinstreamConfig:
    """The default config, its shard autoscaling keys changed as given."""
    cfg = PinstreamConfig().with_value("broker.bootstrap", "127.0.0.1:9092")
    for key, value in scaling.items():
        cfg = cfg.with_value(f"serve.shard_autoscaling.{key}", value)
    return cfg


def test_equal_bounds_give_a_fixed_replica_count() -> None:
    scaling = config(max_replicas=2, min_replicas=2).serve.shard_scaling
    assert replica_scaling(scaling) == {"num_replicas": 2}


def test_wider_bounds_give_serve_autoscaling() -> None:
    settings = config(max_replicas=3, target_ongoing_requests=4, upscale_delay_s=1).serve
    options = replica_scaling(settings.shard_scaling)
    assert options["num_replicas"] == "auto"
    scaling = options["autoscaling_config"]
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 3)
    assert (scaling.target_ongoing_requests, scaling.upscale_delay_s) == (4.0, 1.0)
    assert scaling.downscale_delay_s == 600.0  # the config's own default, not overwritten


def test_the_app_has_one_fastapi_ingress_and_a_deployment_per_shard() -> None:
    built = build_serve_app(build_app(config(max_replicas=2)), name="t")
    built.validate_single_fastapi_ingress()
    assert built.ingress_deployment_name == "ingress"
    by_name = {d.name: d for d in built.deployments}
    assert sorted(by_name) == ["ingress", "query-encoder", "shard-0", "shard-1"]
    shard = by_name["shard-0"]
    assert shard._deployment_config.autoscaling_config.max_replicas == 2
    assert shard.max_ongoing_requests == 32  # two 16-query batches: one searched, one filling
    assert by_name["query-encoder"].max_ongoing_requests == 64  # fills two 32-text batches
    assert by_name["ingress"].max_ongoing_requests == 256
    for front in ("ingress", "query-encoder"):  # every deployment autoscales, as configured
        scaling = by_name[front]._deployment_config.autoscaling_config
        assert (scaling.min_replicas, scaling.max_replicas) == (1, 2), front
