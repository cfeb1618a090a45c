"""The KubeRay manifests parse, and agree with conf/, the production config and the launcher.

Their fields are checked against the KubeRay CRD schema in test_kuberay_crd.py.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import ray
from ray.serve._private.build_app import BuiltApplication, build_app
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import ServeDeploySchema

from cluster.node_types import CPU_WORKER, GPU_WORKER, node_types
from cluster.planner import Assumptions
from conf.config import PinstreamConfig, load_config
from serve.app_builder import app_builder
from serve.data_path import serve_environment
from tests.unit.cluster.manifests import (
    CONFIG_MAP,
    CONFIG_MOUNT,
    DOCKERFILE,
    KUSTOMIZATION,
    LAUNCHER,
    PRODUCTION_CONFIG,
    RAYCLUSTER_INGEST,
    RAYSERVICE,
    ROOT,
    SERVE_YAML,
    app_of,
    deployments_of,
    k8s_quantity,
    kind_of,
    load,
    pod_specs,
    ray_cluster_specs,
    ray_container,
    scaling_mismatches,
    serve_config_v2,
    unknown_serve_keys,
    worker_groups,
)

CLUSTERS = sorted(ray_cluster_specs())


@pytest.fixture(scope="module")
def production() -> PinstreamConfig:
    return load_config(PRODUCTION_CONFIG)


def cluster(name: str) -> dict[str, Any]:
    return ray_cluster_specs()[name]


def test_every_manifest_parses_as_a_ray_io_v1_object() -> None:
    assert load(RAYSERVICE)["kind"] == "RayService"
    assert load(RAYCLUSTER_INGEST)["kind"] == "RayCluster"
    for path in (RAYSERVICE, RAYCLUSTER_INGEST):
        assert load(path)["apiVersion"] == "ray.io/v1", path


@pytest.mark.parametrize("name", CLUSTERS)
def test_cluster_runs_the_installed_ray_and_autoscales(name: str) -> None:
    spec = cluster(name)
    assert spec["rayVersion"] == ray.__version__
    assert spec["enableInTreeAutoscaling"] is True
    # which fields exist is the CRD schema's to say (test_kuberay_crd.py); these are ours
    options = spec["autoscalerOptions"]
    assert options["upscalingMode"] == "Default" and options["idleTimeoutSeconds"] > 0
    for group, pod in pod_specs(spec).items():
        image = ray_container(pod)["image"]
        assert f"ray{ray.__version__}-py311" in image, (group, image)
        assert image.endswith("-gpu") == (group == GPU_WORKER), (group, image)


@pytest.mark.parametrize("name", CLUSTERS)
def test_head_cpu_and_gpu_groups_with_bounds(name: str) -> None:
    spec = cluster(name)
    groups = worker_groups(spec)
    assert sorted(groups) == [CPU_WORKER, GPU_WORKER]
    for group in groups.values():
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


@pytest.mark.parametrize("name", CLUSTERS)
def test_ray_start_params_are_strings(name: str) -> None:
    spec = cluster(name)
    params = [spec["headGroupSpec"]["rayStartParams"]]
    params += [g["rayStartParams"] for g in spec["workerGroupSpecs"]]
    for p in params:
        assert all(isinstance(v, str) for v in p.values()), p


@pytest.mark.parametrize("name", CLUSTERS)
def test_groups_have_the_launcher_node_types_ray_resources(name: str) -> None:
    nodes = node_types(LAUNCHER)
    for group_name, group in worker_groups(cluster(name)).items():
        node = nodes[group_name]
        params = group["rayStartParams"]
        limits = ray_container(group["template"]["spec"])["resources"]["limits"]
        assert int(params["num-cpus"]) == node.cpus, group_name
        assert int(params["memory"]) == node.memory_bytes, group_name
        assert int(limits.get("nvidia.com/gpu", 0)) == node.gpus, group_name
        # The pod holds Ray's CPUs and its memory plus the object store.
        assert k8s_quantity(limits["cpu"]) >= node.cpus, group_name
        needed = node.memory_bytes + int(params["object-store-memory"])
        assert k8s_quantity(limits["memory"]) >= needed, group_name
    assert nodes["head"].cpus == 0


@pytest.mark.parametrize("name", CLUSTERS)
def test_pods_get_guaranteed_resources(name: str) -> None:
    for group, pod in pod_specs(cluster(name)).items():
        resources = ray_container(pod)["resources"]
        assert resources["requests"] == resources["limits"], group


def test_object_store_size_matches_the_launcher() -> None:
    launcher = load(LAUNCHER)
    (worker_start,) = [c for c in launcher["worker_start_ray_commands"] if "ray start" in c]
    (head_start,) = [c for c in launcher["head_start_ray_commands"] if "ray start" in c]
    worker_bytes = re.search(r"--object-store-memory=(\d+)", worker_start)
    head_bytes = re.search(r"--object-store-memory=(\d+)", head_start)
    assert worker_bytes and head_bytes
    for spec in ray_cluster_specs().values():
        head = spec["headGroupSpec"]["rayStartParams"]["object-store-memory"]
        assert head == head_bytes.group(1)
        for group in spec["workerGroupSpecs"]:
            assert group["rayStartParams"]["object-store-memory"] == worker_bytes.group(1)


@pytest.mark.parametrize("name", CLUSTERS)
def test_every_ray_pod_mounts_the_config_map(name: str) -> None:
    for group, pod in pod_specs(cluster(name)).items():
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = ray_container(pod)["volumeMounts"]
        (mount,) = [m for m in mounts if m["mountPath"] == str(CONFIG_MOUNT)]
        assert volumes[mount["name"]]["configMap"]["name"] == CONFIG_MAP, group


def test_config_map_is_built_from_the_production_config() -> None:
    kustomization = load(KUSTOMIZATION)
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == CONFIG_MAP
    assert generator["files"] == [PRODUCTION_CONFIG.name]
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True
    resources = {(KUSTOMIZATION.parent / r).resolve() for r in kustomization["resources"]}
    assert resources == {RAYSERVICE, RAYCLUSTER_INGEST}
    launcher_mounts = load(LAUNCHER)["file_mounts"]
    assert launcher_mounts == {str(CONFIG_MOUNT / "pinstream.yaml"): "cluster/pinstream.yaml"}
    assert (ROOT / launcher_mounts[str(CONFIG_MOUNT / "pinstream.yaml")]).is_file()


def test_production_config_is_a_real_deployment(production: PinstreamConfig) -> None:
    assert not production.broker.is_local
    assert production.ray.address == "auto"
    assert "://" in production.storage.root  # object storage, not a local folder


def test_serve_config_v2_passes_ray_serves_schema() -> None:
    serve_config = serve_config_v2()
    ServeDeploySchema.model_validate(serve_config)
    assert unknown_serve_keys(serve_config) == []


def test_serve_config_v2_reads_the_mounted_config(production: PinstreamConfig) -> None:
    serve_config = serve_config_v2()
    app = app_of(serve_config)
    assert app["args"] == {"config": str(CONFIG_MOUNT / PRODUCTION_CONFIG.name)}
    assert serve_config["http_options"] == {
        "host": production.serve.host,
        "port": production.serve.port,
    }
    assert app["name"] == production.serve.app_name
    assert app["route_prefix"] == production.serve.route_prefix
    ports = {p["name"]: p["containerPort"] for p in ray_container(_head_pod())["ports"]}
    assert ports["serve"] == production.serve.port  # KubeRay's serve Service targets this port


def test_serve_config_v2_is_the_application_of_conf_serve_yaml(
    production: PinstreamConfig,
) -> None:
    local, cluster_app = load(SERVE_YAML), serve_config_v2()
    assert app_of(cluster_app)["import_path"] == app_of(local)["import_path"]
    assert app_of(cluster_app)["name"] == app_of(local)["name"]
    ours = deployments_of(cluster_app)
    expected = sorted(d.name for d in _built(production).deployments)
    assert sorted(ours) == expected
    policies = {kind_of(n): _policy(d) for n, d in deployments_of(local).items()}
    for name, deployment in ours.items():
        assert _policy(deployment) == policies[kind_of(name)], name


def test_shards_scale_as_the_production_config_says(production: PinstreamConfig) -> None:
    assert scaling_mismatches(serve_config_v2(), production) == []


def test_deployment_resources_match_the_production_config(production: PinstreamConfig) -> None:
    # ray_actor_options in a Serve config replace those set in code: only shards set
    # them (for the memory reservation), repeating the config's CPUs.
    ours = deployments_of(serve_config_v2())
    shard_memory = Assumptions().replica_memory_gib * 2**30
    for name, deployment in ours.items():
        if kind_of(name) != "shard":
            assert "ray_actor_options" not in deployment, name
            continue
        assert deployment["ray_actor_options"]["num_cpus"] == production.serve.shard_num_cpus
        assert deployment["ray_actor_options"]["memory"] == shard_memory, name
    assert production.serve.encoder_num_gpus == 1  # query encoders on gpu-worker nodes


def test_serving_groups_can_hold_every_deployment_at_its_max(
    production: PinstreamConfig,
) -> None:
    spec, nodes = cluster("rayservice"), node_types(LAUNCHER)
    groups = worker_groups(spec)
    needs = {"CPU": 0.0, "GPU": 0.0, "memory": 0.0}
    serve = production.serve
    in_code = {
        "ingress": {"num_cpus": serve.ingress_num_cpus},
        "query-encoder": {"num_cpus": serve.encoder_num_cpus, "num_gpus": serve.encoder_num_gpus},
    }
    for name, deployment in deployments_of(serve_config_v2()).items():
        most = AutoscalingConfig(**deployment["autoscaling_config"]).max_replicas
        options = deployment.get("ray_actor_options") or in_code[name]
        needs["CPU"] += most * options.get("num_cpus", 0)
        needs["GPU"] += most * options.get("num_gpus", 0)
        needs["memory"] += most * options.get("memory", 0)
    cpu, gpu = groups[CPU_WORKER]["maxReplicas"], groups[GPU_WORKER]["maxReplicas"]
    assert needs["GPU"] <= gpu * nodes[GPU_WORKER].gpus
    assert needs["CPU"] <= cpu * nodes[CPU_WORKER].cpus + gpu * nodes[GPU_WORKER].cpus
    assert needs["memory"] <= cpu * nodes[CPU_WORKER].memory_bytes


def test_ingest_gpu_group_covers_the_embedder_pool(production: PinstreamConfig) -> None:
    ingest, node = production.ingest, node_types(LAUNCHER)[GPU_WORKER]
    group = worker_groups(cluster("raycluster-ingest"))[GPU_WORKER]
    assert ingest.embedder_num_gpus == 1
    assert group["maxReplicas"] * node.gpus >= ingest.embedders_max * ingest.embedder_num_gpus
    assert group["minReplicas"] * node.gpus >= ingest.embedders_min * ingest.embedder_num_gpus
    assert ingest.embedder_num_cpus <= node.cpus


def test_image_is_built_on_the_installed_ray_with_every_package() -> None:
    text = DOCKERFILE.read_text()
    assert f"rayproject/ray:{ray.__version__}-py311" in text
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in pyproject["tool"]["setuptools"]["packages"]:
        folder = package.split(".")[0]  # a subpackage comes with its top-level folder
        assert f"COPY --chown=ray:users {folder} {folder}" in text, package


def _head_pod() -> dict[str, Any]:
    return cluster("rayservice")["headGroupSpec"]["template"]["spec"]


def _built(production: PinstreamConfig) -> BuiltApplication:
    app = app_builder({"config": str(PRODUCTION_CONFIG)})
    return build_app(app, name=production.serve.app_name)


def _policy(deployment: dict[str, Any]) -> dict[str, Any]:
    """How a deployment reacts to load. Bounds and per-replica sizes differ by environment;
    `scaling_mismatches` checks those against each environment's config."""
    autoscaling = dict(deployment["autoscaling_config"])
    for sized in ("min_replicas", "max_replicas", "target_ongoing_requests"):
        autoscaling.pop(sized)
    return {
        "num_replicas": deployment["num_replicas"],
        "max_queued_requests": deployment.get("max_queued_requests"),
        **autoscaling,
    }


def test_serving_pods_set_the_serve_switches_of_the_production_throughput_mode(
    production: PinstreamConfig,
) -> None:
    wanted = serve_environment(production.serve)
    assert wanted, "the production config should use Serve's fast data path"
    for group, pod in pod_specs(cluster("rayservice")).items():
        env = {e["name"]: e["value"] for e in ray_container(pod).get("env", [])}
        assert {k: v for k, v in env.items() if k.startswith("RAY_SERVE")} == wanted, group
