"""The KubeRay manifests, committed and emitted, pass the KubeRay v1 CRD schemas."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.unit.cluster.kuberay_crd import crd_errors
from tests.unit.cluster.manifests import RAYCLUSTER_INGEST, RAYSERVICE, load

COMMITTED = {path.name: path for path in (RAYSERVICE, RAYCLUSTER_INGEST)}


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_manifest_passes_the_crd_schema(name: str) -> None:
    manifest = load(COMMITTED[name])
    assert manifest["apiVersion"] == "ray.io/v1"
    assert crd_errors(manifest) == []


def _spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    return spec.get("rayClusterConfig", spec)


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_the_schema_refuses_a_misspelt_key_and_a_wrong_type(name: str) -> None:
    manifest = load(COMMITTED[name])
    misspelt, mistyped = copy.deepcopy(manifest), copy.deepcopy(manifest)
    group = _spec(misspelt)["workerGroupSpecs"][0]
    group["maxReplica"] = group.pop("maxReplicas")
    assert any("maxReplica" in e for e in crd_errors(misspelt))
    _spec(mistyped)["autoscalerOptions"]["idleTimeoutSeconds"] = "600"
    assert any("idleTimeoutSeconds" in e for e in crd_errors(mistyped))


def test_the_schema_refuses_an_unknown_upscaling_mode() -> None:
    manifest = load(RAYCLUSTER_INGEST)
    manifest["spec"]["autoscalerOptions"]["upscalingMode"] = "Fast"
    assert any("upscalingMode" in e for e in crd_errors(manifest))


def test_emitted_manifests_pass_the_crd_schema(emitted_stream: str) -> None:
    documents = list(yaml.safe_load_all(emitted_stream))
    assert [d["kind"] for d in documents] == ["RayService", "RayCluster"]
    for document in documents:
        assert crd_errors(document) == []
