"""The cluster launcher config passes Ray's own validation and states the planner's node types."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from cluster.exceptions import ClusterError
from cluster.node_types import CPU_WORKER, GIB, GPU_WORKER, HEAD, node_types
from conf.config import load_config
from tests.unit.cluster.manifests import LAUNCHER, ROOT, load


def validated(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does to a config before it touches the cloud: fill defaults, validate."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_launcher_config_passes_rays_validation() -> None:
    prepared = validated(load(LAUNCHER))
    assert prepared["head_node_type"] == HEAD
    assert prepared["provider"]["type"] == "aws"
    # Our empty command lists replace the defaults (which install a nightly Ray).
    assert prepared["setup_commands"] == [] and prepared["worker_setup_commands"] == []


def test_rays_validation_catches_a_misspelt_key() -> None:
    config = load(LAUNCHER)
    config["available_node_types"][GPU_WORKER]["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        validated(config)


def test_node_types_and_bounds() -> None:
    config = load(LAUNCHER)
    types = config["available_node_types"]
    assert sorted(types) == sorted([HEAD, CPU_WORKER, GPU_WORKER])
    workers = [types[CPU_WORKER], types[GPU_WORKER]]
    for spec in workers:
        assert 1 <= spec["min_workers"] <= spec["max_workers"]
    # every worker type can reach its own max inside the global ceiling
    assert sum(spec["max_workers"] for spec in workers) <= config["max_workers"]


def test_node_types_state_their_ray_resources() -> None:
    nodes = node_types(LAUNCHER)
    assert nodes[HEAD].cpus == 0  # nothing is scheduled on the head
    assert nodes[CPU_WORKER].gpus == 0 and nodes[CPU_WORKER].memory_bytes == 448 * GIB
    assert nodes[GPU_WORKER].gpus == 1 and nodes[GPU_WORKER].accelerator == "A10G"
    assert nodes[CPU_WORKER].describe() == "r6i.16xlarge: 60 CPU, 448 GiB"
    assert nodes[GPU_WORKER].describe() == "g5.4xlarge: 14 CPU, 1 x A10G, 36 GiB"


def test_images_run_the_installed_ray() -> None:
    config = load(LAUNCHER)
    images = [
        config["docker"]["image"],
        config["available_node_types"][GPU_WORKER]["docker"]["worker_image"],
    ]
    for image in images:
        assert f"ray{ray.__version__}-py311" in image


def test_mounted_config_is_a_valid_pinstream_config() -> None:
    (local_path,) = load(LAUNCHER)["file_mounts"].values()
    cfg = load_config(ROOT / local_path)
    assert not cfg.broker.is_local


def test_node_types_refuses_a_config_without_a_gpu_type(tmp_path: Path) -> None:
    config = load(LAUNCHER)
    del config["available_node_types"][GPU_WORKER]
    path = tmp_path / "aws.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ClusterError, match="gpu-worker"):
        node_types(path)
