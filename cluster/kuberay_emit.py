"""`pinstream plan --emit kuberay`: the KubeRay manifests with the plan's autoscaling bounds.

The plan is made twice, at the target (the daily peak) and at `trough` times its query and
ingest rates, and the manifests under `cluster/kuberay/` are rewritten with the bounds of
`cluster/kuberay_bounds.py`. The committed manifests are what this emits for the example
in docs/autoscaling.md (a test checks), so the emitted files differ from them only where
a plan differs from that example.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from cluster.kuberay_bounds import Emitted, kuberay_bounds
from cluster.manifest_patch import patch_ingest, patch_rayservice, read_bounds
from cluster.plan_inputs import PlanRequest, PlanTarget
from cluster.planner import Plan, make_plan
from cluster.replica_caps import KUBERAY
from cluster.replica_resources import PRODUCTION_CONFIG, replica_demands
from conf.config import PinstreamConfig

RAYSERVICE, RAYCLUSTER_INGEST = "rayservice.yaml", "raycluster-ingest.yaml"


@dataclass(frozen=True)
class Manifests:
    """The emitted manifests by file name, and the bounds they carry with their reasons."""

    files: dict[str, str]
    emitted: Emitted

    def to_stdout(self) -> str:
        """Both manifests as one multi-document YAML stream (`kubectl apply -f -`)."""
        return "---\n".join(self.files[name] for name in (RAYSERVICE, RAYCLUSTER_INGEST))

    def notes(self, production: PinstreamConfig) -> list[str]:
        """What each bound is and why, and the production config's values that must change."""
        notes = [f"# {line}" for line in self.emitted.notes]
        config = production_values(production)
        differ = {k: v for k, v in self.emitted.config.items() if config.get(k) != v}
        if differ:
            notes.append(f"# set in cluster/{PRODUCTION_CONFIG.name} (tests check they agree):")
            notes += [
                f"#   {key}: {value} (now {config.get(key)})" for key, value in differ.items()
            ]
        if "shards.count" in differ:
            notes.append("# a new shard count is a migration: docs/autoscaling.md, Deploying")
        return notes

    def write(self, out: Path) -> list[Path]:
        """Write both manifests under `out`; the paths written."""
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in self.files.items():
            (out / name).write_text(text, encoding="utf-8")
            written.append(out / name)
        return written


def production_values(cfg: PinstreamConfig) -> dict[str, int]:
    """The production config's values that the emitted manifests must agree with."""
    values = {"shards.count": cfg.shards.count}
    serve = cfg.serve
    for key, scaling in (
        ("shard", serve.shard_scaling),
        ("ingress", serve.ingress_scaling),
        ("encoder", serve.encoder_scaling),
    ):
        values[f"serve.{key}_autoscaling.min_replicas"] = scaling.min_replicas
        values[f"serve.{key}_autoscaling.max_replicas"] = scaling.max_replicas
    values["ingest.embedders_min"] = cfg.ingest.embedders_min
    values["ingest.embedders_max"] = cfg.ingest.embedders_max
    return values


def trough_plan_target(target: PlanTarget, trough: float) -> PlanTarget:
    """The target at the daily trough: `trough` times the peak's query and ingest rates."""
    if not 0 < trough <= 1:
        raise ValueError(f"trough must be in (0, 1] of the peak, got {trough}")
    return dataclasses.replace(
        target, qps=target.qps * trough, ingest_rate=target.ingest_rate * trough
    )


def emit_kuberay(
    request: PlanRequest, cfg: PinstreamConfig, trough: float, source: Path = KUBERAY
) -> tuple[Plan, Manifests]:
    """The peak plan, and the manifests of `source` rewritten with the bounds it implies."""
    service = (source / RAYSERVICE).read_text(encoding="utf-8")
    ingest = (source / RAYCLUSTER_INGEST).read_text(encoding="utf-8")
    r = request
    peak = make_plan(r.target, r.figures, r.nodes, r.assumptions)
    low = make_plan(trough_plan_target(r.target, trough), r.figures, r.nodes, r.assumptions)
    emitted = kuberay_bounds(
        peak, low, read_bounds(service, ingest), replica_demands(service, cfg), r.nodes, cfg
    )
    files = {
        RAYSERVICE: patch_rayservice(service, emitted.bounds),
        RAYCLUSTER_INGEST: patch_ingest(ingest, emitted.bounds),
    }
    return peak, Manifests(files, emitted)
