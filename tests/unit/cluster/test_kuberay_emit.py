"""`pinstream plan --emit kuberay`: the manifests with the plan's bounds, and the committed
manifests as what the example in docs/autoscaling.md emits."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from cluster.bench_results import load_figures
from cluster.exceptions import ClusterError
from cluster.kuberay_emit import trough_plan_target
from cluster.load_curve import TROUGH_FRACTION
from cluster.manifest_patch import Bounds, patch_ingest, patch_rayservice, read_bounds
from cluster.node_types import CPU_WORKER, GPU_WORKER, node_types
from cluster.planner import CPU_SERVING, PlanTarget, make_plan
from conf.config import load_config
from tests.unit.cluster.bench_files import write_all
from tests.unit.cluster.manifests import (
    PRODUCTION_CONFIG,
    RAYCLUSTER_INGEST,
    RAYSERVICE,
    ROOT,
    unknown_serve_keys,
)
from tests.unit.cluster.plan_args import ISSUE_ARGS, parse

DOCS = ROOT / "docs" / "autoscaling.md"
SECTION = "## 4. Node bounds from the planner"
EXAMPLE = Path(__file__).parent / "fixtures" / "kuberay_example"


def documented_command() -> list[str]:
    """The `pinstream plan ... --emit kuberay` command of the docs section, as argv."""
    section = DOCS.read_text().split(SECTION)[1].split("\n## ")[0]
    block = section.split("```")[1].replace("\\\n", " ")
    (line,) = [line for line in block.splitlines() if line.startswith("pinstream plan")]
    argv = shlex.split(line)[1:]
    assert "--emit" in argv and "--out" in argv
    return argv


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    args = parse(argv)
    assert args.run(load_config(), args) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def with_out(argv: list[str], out: Path) -> list[str]:
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(out)
    return argv


def test_committed_manifests_are_what_the_documented_example_emits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = documented_command()
    assert argv[argv.index("--out") + 1] == "cluster/kuberay"
    _, notes = run([*with_out(argv, tmp_path), "--results-dir", str(EXAMPLE)], capsys)
    for path in (RAYSERVICE, RAYCLUSTER_INGEST):
        assert (tmp_path / path.name).read_text() == path.read_text(), path.name
    # the production config already says what the manifests say
    assert "set in cluster/pinstream.yaml" not in notes


def test_the_example_figures_are_the_dated_results_the_docs_name() -> None:
    section = DOCS.read_text().split(SECTION)[1].split("\n## ")[0]
    for name in ("shards.json", "serving.json", "ingest.json"):
        source = json.loads((EXAMPLE / name).read_text())
        assert source["date"] in section, name


def test_emitted_bounds_follow_the_plans_at_peak_and_trough(
    emitted_stream: str, tmp_path: Path
) -> None:
    service_text, ingest_text = emitted_stream.split("---\n")
    bounds = read_bounds(service_text, ingest_text)
    write_all(tmp_path)  # the figures the fixture emitted with
    figures, nodes = load_figures(tmp_path), node_types()
    target = PlanTarget(10_000_000_000, 2e6, 20_000, 384, "IVF65536,PQ32")
    peak = make_plan(target, figures, nodes)
    trough = make_plan(trough_plan_target(target, TROUGH_FRACTION), figures, nodes)
    cpu, low = peak.serving[CPU_SERVING], trough.serving[CPU_SERVING]
    assert bounds.shards == cpu.shards.value == 23
    assert bounds.deployments["shard"] == (
        low.replicas_per_shard.value,
        cpu.replicas_per_shard.value,
    )
    assert bounds.deployments["ingress"] == (
        trough.ingress_replicas.value,
        peak.ingress_replicas.value,
    )
    assert bounds.deployments["query-encoder"] == (
        trough.encoder_gpus.value,
        peak.encoder_gpus.value,
    )
    # one GPU per embedder actor and per gpu-worker node
    assert bounds.groups[("ingest", GPU_WORKER)] == (
        trough.ingest_gpus.value,
        peak.ingest_gpus.value,
    )
    assert bounds.groups[("serving", GPU_WORKER)] == bounds.deployments["query-encoder"]
    service = yaml.safe_load(service_text)
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)
    assert unknown_serve_keys(serve_config) == []
    names = [d["name"] for d in serve_config["applications"][0]["deployments"]]
    assert names == ["ingress", "query-encoder", *(f"shard-{i}" for i in range(23))]


def test_serving_groups_hold_every_deployment_at_its_bounds(emitted_stream: str) -> None:
    service_text, ingest_text = emitted_stream.split("---\n")
    bounds, nodes = read_bounds(service_text, ingest_text), node_types()
    serve, shard_memory = load_config(PRODUCTION_CONFIG).serve, 64 * 2**30
    for pick in (0, 1):  # at the minimum and at the maximum
        shards = bounds.shards * bounds.deployments["shard"][pick]
        ingress = bounds.deployments["ingress"][pick]
        cpu_nodes = bounds.groups[("serving", CPU_WORKER)][pick]
        assert shards * shard_memory <= cpu_nodes * nodes[CPU_WORKER].memory_bytes
        cpus = shards * serve.shard_num_cpus + ingress * serve.ingress_num_cpus
        assert cpus <= cpu_nodes * nodes[CPU_WORKER].cpus


def test_stdout_is_one_stream_and_the_notes_name_the_config_keys_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_all(tmp_path)
    out, notes = run([*ISSUE_ARGS, "--results-dir", str(tmp_path), "--emit", "kuberay"], capsys)
    assert [d["kind"] for d in yaml.safe_load_all(out)] == ["RayService", "RayCluster"]
    assert "#   shards.count: 23 (now 8)" in notes
    assert "a new shard count is a migration" in notes


def test_a_bound_without_its_figure_is_kept_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, notes = run([*ISSUE_ARGS, "--results-dir", str(tmp_path), "--emit", "kuberay"], capsys)
    before = read_bounds(RAYSERVICE.read_text(), RAYCLUSTER_INGEST.read_text())
    after = read_bounds(*out.split("---\n"))
    for name in ("shard", "ingress", "query-encoder"):
        assert after.deployments[name] == before.deployments[name], name
        assert f"{name} replicas kept at" in notes
    assert "no benchmark result" in notes


def test_out_needs_emit_and_json_excludes_it(tmp_path: Path) -> None:
    args = parse([*ISSUE_ARGS, "--out", str(tmp_path)])
    with pytest.raises(ClusterError, match="--out needs --emit kuberay"):
        args.run(load_config(), args)
    with pytest.raises(SystemExit):
        parse([*ISSUE_ARGS, "--json", "--emit", "kuberay"])


def test_a_patch_that_cannot_land_is_refused() -> None:
    service, ingest = RAYSERVICE.read_text(), RAYCLUSTER_INGEST.read_text()
    bounds = read_bounds(service, ingest)
    missing = Bounds(
        bounds.shards, bounds.deployments, {**bounds.groups, ("ingest", "tpu"): (1, 2)}
    )
    with pytest.raises(ClusterError, match="groupName: tpu"):
        patch_ingest(ingest, missing)
    no_max = service.replace("max_replicas: 74", "maximum: 74")
    with pytest.raises(ClusterError, match="max_replicas"):
        patch_rayservice(no_max, bounds)
    assert patch_rayservice(service, bounds) == service  # the committed bounds are a fixed point
