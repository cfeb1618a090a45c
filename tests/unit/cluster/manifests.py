"""Loading the deployment files under test, and checks shared by the cluster tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import (
    DeploymentSchema,
    HTTPOptionsSchema,
    RayActorOptionsSchema,
    ServeApplicationSchema,
    ServeDeploySchema,
)

from conf.config import PinstreamConfig

ROOT = Path(__file__).resolve().parents[3]
CLUSTER = ROOT / "cluster"
SERVE_YAML = ROOT / "conf" / "serve.yaml"
RAYSERVICE = CLUSTER / "kuberay" / "rayservice.yaml"
RAYCLUSTER_INGEST = CLUSTER / "kuberay" / "raycluster-ingest.yaml"
KUSTOMIZATION = CLUSTER / "kustomization.yaml"
PRODUCTION_CONFIG = CLUSTER / "pinstream.yaml"
LAUNCHER = CLUSTER / "launcher" / "aws.yaml"
DOCKERFILE = CLUSTER / "image" / "Dockerfile"
CONFIG_MOUNT = Path("/etc/pinstream")
CONFIG_MAP = "pinstream-config"


def load(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def serve_config_v2() -> dict[str, Any]:
    """The Serve config embedded in the RayService, parsed."""
    return yaml.safe_load(load(RAYSERVICE)["spec"]["serveConfigV2"])


def ray_cluster_specs() -> dict[str, dict[str, Any]]:
    """The RayCluster specs to deploy: the RayService's and the ingest RayCluster's."""
    return {
        "rayservice": load(RAYSERVICE)["spec"]["rayClusterConfig"],
        "raycluster-ingest": load(RAYCLUSTER_INGEST)["spec"],
    }


def worker_groups(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Worker groups of a RayCluster spec, by group name."""
    return {group["groupName"]: group for group in spec["workerGroupSpecs"]}


def pod_specs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pod spec of the head ("head") and of every worker group, by group name."""
    pods = {"head": spec["headGroupSpec"]["template"]["spec"]}
    pods.update({name: g["template"]["spec"] for name, g in worker_groups(spec).items()})
    return pods


def ray_container(pod: dict[str, Any]) -> dict[str, Any]:
    """The Ray container of a pod (the first, as KubeRay expects)."""
    return pod["containers"][0]


def app_of(serve_config: dict[str, Any]) -> dict[str, Any]:
    """The one application of a Serve config."""
    (app,) = serve_config["applications"]
    return app


def deployments_of(serve_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The deployment overrides of the one application, by name."""
    return {d["name"]: d for d in app_of(serve_config)["deployments"]}


def kind_of(deployment_name: str) -> str:
    """`shard` for shard-N, else the name itself."""
    return "shard" if deployment_name.startswith("shard-") else deployment_name


def unknown_serve_keys(config: dict[str, Any]) -> list[str]:
    """Keys Ray Serve's schema would silently ignore (its models accept extra keys)."""
    unknown = _unknown(ServeDeploySchema, config, "")
    unknown += _unknown(HTTPOptionsSchema, config.get("http_options") or {}, "http_options")
    for i, app in enumerate(config.get("applications") or []):
        where = f"applications[{i}]"
        unknown += _unknown(ServeApplicationSchema, app, where)
        for j, deployment in enumerate(app.get("deployments") or []):
            at = f"{where}.deployments[{j}]"
            unknown += _unknown(DeploymentSchema, deployment, at)
            autoscaling = deployment.get("autoscaling_config") or {}
            unknown += _unknown(AutoscalingConfig, autoscaling, f"{at}.autoscaling_config")
            options = deployment.get("ray_actor_options") or {}
            unknown += _unknown(RayActorOptionsSchema, options, f"{at}.ray_actor_options")
    return unknown


def _unknown(model: type[BaseModel], data: dict[str, Any], where: str) -> list[str]:
    known = set(model.model_fields) | {
        f.alias for f in model.model_fields.values() if f.alias is not None
    }
    return [f"{where}.{key}".lstrip(".") for key in data if key not in known]


def k8s_quantity(text: str | int) -> float:
    """A Kubernetes quantity (`62`, `500m`, `480Gi`) as a number."""
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    value = str(text)
    for suffix, factor in suffixes.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def scaling_mismatches(serve_config: dict[str, Any], cfg: PinstreamConfig) -> list[str]:
    """Where a Serve config scales deployments otherwise than the pinstream config tells code."""
    settings, mismatches = cfg.serve, []
    expected = {
        "ingress": (settings.ingress_scaling, settings.ingress_max_ongoing_requests),
        "query-encoder": (settings.encoder_scaling, settings.encoder_max_ongoing_requests),
        "shard": (settings.shard_scaling, settings.shard_max_ongoing_requests),
    }
    for name, deployment in deployments_of(serve_config).items():
        scaling, ongoing = expected[kind_of(name)]
        if deployment["max_ongoing_requests"] != ongoing:
            mismatches.append(f"{name}.max_ongoing_requests")
        found = AutoscalingConfig(**deployment["autoscaling_config"]).model_dump()
        for key, value in scaling.model_dump().items():
            if found[key] != value:
                mismatches.append(f"{name}.autoscaling_config.{key}")
    return mismatches
