"""The capacity planner: worked examples with and without benchmark results."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest

from cluster.bench_results import load_figures
from cluster.exceptions import PlanError
from cluster.node_types import GIB, node_types
from cluster.plan_report import render
from cluster.planner import Assumptions, Plan, PlanTarget, make_plan
from tests.unit.cluster.bench_files import FILES, VALID, write_all, write_results

ISSUE_TARGET = PlanTarget(
    pins=10_000_000_000, qps=2_000_000, ingest_rate=20_000, dim=384, index="IVF65536,PQ32"
)
# IVF65536,PQ32 at 384 d: centroids 65536*384*4 + list headers 65536*48 + codebooks 256*384*4
FIXED = 100_663_296 + 3_145_728 + 393_216


def plan_for(results: Path, target: PlanTarget = ISSUE_TARGET, **assumed: float) -> Plan:
    return make_plan(target, load_figures(results), node_types(), Assumptions(**assumed))


def test_without_benchmarks_memory_is_sized_and_throughput_is_unknown(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    # 10e9 x 40 B x 1.3 over (64 GiB - fixed) per replica = 7.6 -> 8 shards
    capacity = (64 * GIB - FIXED) / 52
    assert plan.shards.value == math.ceil(10e9 / capacity) == 8
    assert plan.bytes_per_vector == 40
    assert plan.replicas_per_shard.value == 2 and plan.replicas_per_shard.at_least
    for count in (plan.encoder_gpus, plan.ingest_gpus, plan.ingress_replicas):
        assert count.value is None
    assert "query QPS per shard replica: no benchmark result" in plan.replicas_per_shard.basis
    assert "run `make bench`" in plan.replicas_per_shard.basis
    # 16 replicas of 60.6 GiB, 7 per 448 GiB node: at least 3 nodes (CPU need unknown)
    serving = plan.nodes["cpu-worker (serving)"]
    assert (serving.value, serving.at_least) == (3, True)
    assert plan.used == []


def test_with_every_benchmark_the_issue_example_is_fully_sized(tmp_path: Path) -> None:
    figures = copy.deepcopy(VALID)
    for key in ("search_qps_per_replica", "batched_search_qps_per_replica"):
        figures[key]["conditions"]["vectors"] = 500_000_000
    for name, keys in FILES.items():
        write_results(tmp_path, name, {key: figures[key] for key in keys})
    plan = plan_for(tmp_path)
    # measured 120 B per vector on 100M vectors, less the index's fixed bytes spread over
    # them: (64 GiB - fixed) / (119 x 1.3) holds 443.6M vectors
    assert plan.bytes_per_vector == pytest.approx(120 - FIXED / 100_000_000)
    assert plan.shards.value == 23
    # measured on 500M >= the planned 434.8M per shard: no scaling; batched 2e6 / (3200 x 0.6)
    assert plan.replicas_per_shard.show() == "1,042"
    assert plan.ingress_replicas.value == math.ceil(2e6 / (2000 * 0.6)) == 1667
    assert plan.encoder_gpus.value == math.ceil(2e6 / (10000 * 0.6)) == 334
    assert plan.ingest_gpus.value == math.ceil(20000 / (12000 * 0.8 * 0.6)) == 4
    assert "re-embedding all pins on them takes 72.3 h" in plan.ingest_gpus.basis
    # 63.3 GiB replicas: 7 per node by memory (15 by CPU); + 1667 ingress CPUs / 60
    serving = plan.nodes["cpu-worker (serving)"]
    assert serving.value == math.ceil(23 * 1042 / 7) + math.ceil(1667 / 60)
    assert not serving.at_least
    assert plan.nodes["gpu-worker (query encoding)"].value == 334
    assert plan.nodes["gpu-worker (ingest)"].value == 4
    assert plan.warnings == []
    # hash routing, the serving and ingest encoder figures, the batched search figure
    unused = {"routed_shards_touched_fraction", "gpu_encoder_sentences_per_s"}
    unused.add("search_qps_per_replica")
    assert sorted(f.key for f in plan.used) == sorted(set(VALID) - unused)
    # GPU serving: 40 B x 1.3 of index per vector in 20 GiB of GPU memory, and the rest of
    # the 119 B in the gpu-worker's 36 GiB of RAM, which binds first
    gpu = plan.serving["GPU serving"]
    in_ram = (120 - FIXED / 100_000_000 - 40) * 1.3
    capacity = min((20 * GIB - FIXED) / 52, 36 * GIB / in_ram)
    assert gpu.shards.value == math.ceil(10e9 / capacity) == 27
    per_shard = math.ceil(10e9 / 27)
    scale = 100_000_000 / per_shard  # codes scanned, measured over planned
    assert gpu.replicas_per_shard.value == math.ceil(2e6 / (40_000 * scale * 0.6))
    assert gpu.gpus.value == 27 * gpu.replicas_per_shard.value + 334
    cpu = plan.serving["CPU serving"]
    assert cpu.gpus.value == 334 and cpu.nodes.value == serving.value + 334
    assert cpu.ram_bytes.value == serving.value * 448 * GIB + 334 * 36 * GIB


def test_a_figure_for_another_index_is_not_used(tmp_path: Path) -> None:
    write_all(tmp_path)
    flat = PlanTarget(pins=10**8, qps=1000, ingest_rate=100, dim=384, index="Flat")
    plan = plan_for(tmp_path, flat)
    assert plan.bytes_per_vector == 384 * 4 + 8
    assert "measured index 'IVF65536,PQ32' dim 384" in plan.bytes_basis
    assert plan.replicas_per_shard.at_least


def test_a_search_rate_measured_on_a_smaller_shard_is_scaled_down_with_a_warning(
    tmp_path: Path,
) -> None:
    write_all(tmp_path)  # measured at 100M vectors, planned 434.8M per shard
    plan = plan_for(tmp_path)
    scale = 100_000_000 / math.ceil(10e9 / 23)
    assert plan.replicas_per_shard.value == math.ceil(2e6 / (3200 * scale * 0.6))
    assert plan.warnings == []  # 4.3x is inside the extrapolation limit
    tiny = copy.deepcopy(VALID["search_qps_per_replica"])
    tiny["conditions"]["vectors"] = 1_000_000
    write_results(tmp_path, "shards.json", {"search_qps_per_replica": tiny})
    (warning,) = plan_for(tmp_path).warnings
    assert "search_qps_per_replica is scaled down 1,250x" in warning
    assert "re-run the benchmark nearer that size" in warning


def test_gpu_figures_from_another_gpu_are_flagged(tmp_path: Path) -> None:
    write_all(tmp_path, gpu="NVIDIA H100 80GB HBM3")
    warnings = plan_for(tmp_path).warnings
    assert len(warnings) == 3  # query encoder, embedder, GPU search
    assert all(
        "measured on NVIDIA H100 80GB HBM3; gpu-worker nodes have A10G" in w for w in warnings
    )


def test_without_the_pipeline_ratio_ingest_gpus_are_a_lower_bound(tmp_path: Path) -> None:
    write_results(
        tmp_path,
        "ingest.json",
        {"embed_sentences_per_s_per_gpu": VALID["embed_sentences_per_s_per_gpu"]},
    )
    ingest = plan_for(tmp_path).ingest_gpus
    assert ingest.show() == ">= 3"  # 20000 / (12000 x 0.6) at the raw encoder's rate
    assert "ingest throughput vs raw encoder: no benchmark result" in ingest.basis


def test_impossible_plans_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="does not fit a cpu-worker"):
        plan_for(tmp_path, replica_memory_gib=1024)
    with pytest.raises(PlanError, match="per shard before any vector"):
        plan_for(tmp_path, PlanTarget(10**6, 1, 1, 384, "IVF4194304,Flat"), replica_memory_gib=4)
    with pytest.raises(PlanError, match="qps must be a finite number > 0"):
        PlanTarget(pins=1, qps=0, ingest_rate=1, dim=8, index="Flat")
    with pytest.raises(PlanError, match="utilization"):
        Assumptions(utilization=1.5)


def test_rendered_plan_names_every_figure_and_its_source(tmp_path: Path) -> None:
    write_all(tmp_path)
    figures = load_figures(tmp_path)
    text = render(make_plan(ISSUE_TARGET, figures, node_types()), figures, "aws.yaml")
    for heading in (
        "shards",
        "replicas per shard",
        "GPUs for query encoding",
        "GPUs for ingest",
        "CPU serving       GPU serving",
        "memory per node",
        "assumptions",
        "index memory (derived from 'IVF65536,PQ32', not measured)",
    ):
        assert heading in text
    assert f"from {tmp_path / 'shards.json'} (2026-05-09T07:35:25Z)" in text
    assert "per vector: 40 B = PQ32x8 code 32 B + id 8 B" in text


def test_rendered_plan_without_results_says_what_is_missing(tmp_path: Path) -> None:
    figures = load_figures(tmp_path)
    text = render(make_plan(ISSUE_TARGET, figures, node_types()), figures, "aws.yaml")
    assert text.count("no benchmark result") >= 5
    assert f"missing search_qps_per_replica: {tmp_path / 'shards.json'} does not exist" in text


def test_a_pipeline_faster_than_its_encoder_is_capped_with_a_warning(tmp_path: Path) -> None:
    ingest = copy.deepcopy(VALID)
    ingest["throughput_ratio_to_raw_encoder"]["value"] = 1.42
    keys = FILES["ingest.json"]
    write_results(tmp_path, "ingest.json", {key: ingest[key] for key in keys})
    plan = plan_for(tmp_path)
    assert plan.ingest_gpus.value == math.ceil(20000 / (12000 * 1.0 * 0.6)) == 3
    (warning,) = plan.warnings
    assert "throughput_ratio_to_raw_encoder = 1.42 > 1" in warning


def shard_bench_figures(results: Path) -> None:
    """shards.json as the shard benchmark writes it: every config, the default first."""

    def on(index: str, qps: float, resident: float, recall: float) -> dict[str, dict]:
        at = {"index": index, "dim": 384, "vectors": 200_000}
        return {
            "search_qps_per_replica": {
                "value": qps,
                "unit": "queries/s",
                "conditions": {
                    **at,
                    "k": 10,
                    "nprobe": 32,
                    "threads": 2,
                    "rerank_factor": 0,
                    "recall_at_10": recall,
                },
            },
            "resident_bytes_per_vector": {"value": resident, "unit": "bytes", "conditions": at},
        }

    configs = [on("IVF256,Flat", 285.0, 2262.0, 0.9998), on("IVF1024,PQ32np", 2500.0, 800.0, 0.41)]
    keys = ("search_qps_per_replica", "resident_bytes_per_vector")
    write_results(results, "shards.json", {key: [c[key] for c in configs] for key in keys}, None)


def test_the_issue_example_from_a_measured_pq32_stand_in(tmp_path: Path) -> None:
    shard_bench_figures(tmp_path)
    plan = plan_for(tmp_path)
    fixed_1024 = 1024 * 384 * 4 + 1024 * 48 + 256 * 384 * 4
    per_vector = 800 - fixed_1024 / 200_000
    assert plan.bytes_per_vector == pytest.approx(per_vector)
    shards = math.ceil(10e9 / ((64 * GIB - FIXED) / (per_vector * 1.3)))
    assert plan.shards.value == shards
    per_shard = math.ceil(10e9 / shards)
    scale = (200_000 * 32 / 1024) / (per_shard * 32 / 65536)
    assert plan.replicas_per_shard.value == math.ceil(2e6 / (2500 * scale * 0.6))
    assert sorted(f.conditions["index"] for f in plan.used) == ["IVF1024,PQ32np"] * 2
    # ~794 B per pin: ~150 shards of 66M pins, which scan 5x the codes measured (no warning)
    coarse, recall = plan.warnings
    assert "compares each query with 65,536 centroids, 64x the measured" in coarse
    assert "'IVF1024,PQ32np' reached recall@10 0.410 with nprobe 32" in recall
    assert any("stands in for 'IVF65536,PQ32'" in line for line in plan.scaling)
    assert any("searches use nprobe 32, as measured" in line for line in plan.scaling)


def test_a_wider_nprobe_needs_more_replicas(tmp_path: Path) -> None:
    shard_bench_figures(tmp_path)
    narrow = plan_for(tmp_path).replicas_per_shard.value
    wide_target = PlanTarget(10**10, 2e6, 20_000, 384, "IVF65536,PQ32", nprobe=128)
    wide = plan_for(tmp_path, wide_target).replicas_per_shard.value
    assert narrow is not None and wide is not None
    assert wide == pytest.approx(4 * narrow, rel=0.01)
    with pytest.raises(PlanError, match="nprobe must be >= 1"):
        PlanTarget(1, 1, 1, 8, "Flat", nprobe=0)


def test_rendered_stand_in_is_an_assumption_and_other_indexes_are_named(tmp_path: Path) -> None:
    shard_bench_figures(tmp_path)
    figures = load_figures(tmp_path)
    text = render(make_plan(ISSUE_TARGET, figures, node_types()), figures, "aws.yaml")
    assumptions = text.split("\nassumptions\n")[1].split("\n\n")[0]
    assert "stands in for 'IVF65536,PQ32': same code (PQ32x8, 32 B per vector)" in assumptions
    assert "search time per query grows with the codes it compares" in assumptions
    assert "taken not to depend on nlist" in assumptions
    assert "not used search_qps_per_replica of 'IVF256,Flat' (another index" in text
    assert "missing query_encoder_qps_per_gpu" in text
