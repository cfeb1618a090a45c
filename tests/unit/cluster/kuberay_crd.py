"""The KubeRay CRD schemas vendored under tests/fixtures/kuberay/, as strict validators."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

CRDS = Path(__file__).resolve().parents[2] / "fixtures" / "kuberay"
SCHEMAS = {"RayCluster": "ray.io_rayclusters.v1.json", "RayService": "ray.io_rayservices.v1.json"}


def strict(schema: Any) -> Any:
    """The schema refusing fields it does not name, as the API server's strict field
    validation does (`kubectl apply` refuses unknown fields by default since 1.27); a CRD's
    own schema leaves them open, so a misspelt key would otherwise pass and be pruned."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    open_fields = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in schema and "additionalProperties" not in schema and not open_fields:
        out["additionalProperties"] = False
    return out


@cache
def validator(kind: str) -> jsonschema.Draft7Validator:
    """A validator for one kind (`RayCluster`, `RayService`) of the vendored CRDs' v1."""
    document = json.loads((CRDS / SCHEMAS[kind]).read_text(encoding="utf-8"))
    assert document["kind"] == kind and document["version"] == "v1"
    return jsonschema.Draft7Validator(strict(document["openAPIV3Schema"]))


def crd_errors(manifest: dict[str, Any]) -> list[str]:
    """Every way `manifest` breaks its kind's CRD schema, as `path: message` lines.

    CEL rules (`x-kubernetes-validations`) are the API server's to run, not checked here.
    """
    errors = validator(manifest["kind"]).iter_errors(manifest)
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
