"""conf/serve.yaml works with Ray's own CLI: its schema, its import path, its deployments."""

from __future__ import annotations

from typing import Any

import pytest
from ray._common.utils import import_attr
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve._private.build_app import build_app
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import ServeDeploySchema

from conf.config import load_config
from conf.errors import ConfigError
from serve.app_builder import app_builder
from tests.unit.cluster.manifests import (
    SERVE_YAML,
    app_of,
    deployments_of,
    load,
    scaling_mismatches,
    unknown_serve_keys,
)

IMPORT_PATH = "serve.app_builder:app_builder"


@pytest.fixture(scope="module")
def serve_yaml() -> dict[str, Any]:
    return load(SERVE_YAML)


def built_deployment_names(import_path: str, args: dict[str, Any], name: str) -> list[str]:
    """Import and call the builder the way Serve's controller does, then list the deployments."""
    app = call_user_app_builder_with_args_if_necessary(import_attr(import_path), args)
    built = build_app(app, name=name)
    built.validate_single_fastapi_ingress()
    assert built.ingress_deployment_name == "ingress"
    return sorted(d.name for d in built.deployments)


def test_serve_yaml_passes_ray_serves_schema(serve_yaml: dict[str, Any]) -> None:
    ServeDeploySchema.model_validate(serve_yaml)  # what `serve run` / `serve deploy` do first
    assert unknown_serve_keys(serve_yaml) == []


def test_unknown_serve_keys_are_reported() -> None:
    typo = {
        "applications": [{"import_path": "a:b", "deployments": [{"name": "x", "num_replica": 2}]}]
    }
    ServeDeploySchema.model_validate(typo)  # Serve itself ignores the typo ...
    assert unknown_serve_keys(typo) == [
        "applications[0].deployments[0].num_replica"
    ]  # ... we don't


def test_serve_yaml_agrees_with_local_config(serve_yaml: dict[str, Any]) -> None:
    cfg = load_config()
    app = app_of(serve_yaml)
    assert serve_yaml["http_options"] == {"host": cfg.serve.host, "port": cfg.serve.port}
    assert app["name"] == cfg.serve.app_name
    assert app["route_prefix"] == cfg.serve.route_prefix
    assert app["import_path"] == IMPORT_PATH
    assert "config" not in app["args"]  # the builder's default is conf/local.yaml


def test_import_path_builds_exactly_the_deployments_it_configures(
    serve_yaml: dict[str, Any],
) -> None:
    app = app_of(serve_yaml)
    built = built_deployment_names(app["import_path"], app["args"], app["name"])
    shards = load_config().shards.count
    expected = ["ingress", "query-encoder"] + [f"shard-{i}" for i in range(shards)]
    assert built == sorted(expected)
    assert sorted(deployments_of(serve_yaml)) == built


def test_shards_scale_as_the_local_config_tells_the_code(serve_yaml: dict[str, Any]) -> None:
    # `pinstream up` builds the app from conf/local.yaml alone; `serve run` overrides
    # it with this file. Both must scale the same way.
    assert scaling_mismatches(serve_yaml, load_config()) == []


def test_every_deployment_autoscales_within_bounds(serve_yaml: dict[str, Any]) -> None:
    for name, deployment in deployments_of(serve_yaml).items():
        assert deployment["num_replicas"] == "auto", name
        autoscaling = AutoscalingConfig(**deployment["autoscaling_config"])
        assert 1 <= autoscaling.min_replicas <= autoscaling.max_replicas, name
        # Ray never scales up when a replica cannot take its target (it only warns).
        target = autoscaling.get_target_ongoing_requests()
        assert target <= deployment["max_ongoing_requests"], name


def test_builder_refuses_the_embedded_broker_and_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match=r"Set `bootstrap: host:port` under the application"):
        app_builder({})


def test_builder_refuses_unknown_args() -> None:
    with pytest.raises(ConfigError, match=r"unknown \['bootstarp'\]"):
        app_builder({"bootstarp": "kafka:9092"})


def test_builder_refuses_a_bad_bootstrap() -> None:
    with pytest.raises(ConfigError, match="bootstrap"):
        app_builder({"bootstrap": "not a host"})


def test_builder_loads_the_named_config_file(tmp_path: Any) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("broker:\n  bootstrap: kafka:9092\nshards:\n  count: 3\n")
    names = built_deployment_names(IMPORT_PATH, {"config": str(path)}, "pinstream")
    assert [n for n in names if n.startswith("shard-")] == ["shard-0", "shard-1", "shard-2"]
