"""The shard benchmark's planner figures: the batched rate beside the one-query rate."""

from __future__ import annotations

from pathlib import Path

from bench.shards_bench import BATCH, bench_config, config_figures, make_data
from cluster.bench_results import Figure, load_figures
from conf.config import ShardsConfig
from tests.unit.cluster.bench_files import write_results


def test_a_tiny_run_writes_a_batched_figure_the_planner_reads(tmp_path: Path) -> None:
    data = make_data(2_000, 32, 120, seed=0)
    config = ShardsConfig(dim=32, sealed_index="IVF16,Flat", nprobe=4, rerank_factor=0)
    result = bench_config("ivf_flat", config, data, repeats=1, work=tmp_path)
    figures = config_figures({"ivf_flat": result}, "ivf_flat", 2_000, 32, threads=1)
    (batched,) = figures["batched_search_qps_per_replica"]
    assert batched["value"] == result["qps_batched"]["median_qps"]["shard_index"]
    assert batched["conditions"]["batch"] == BATCH
    (single,) = figures["search_qps_per_replica"]
    assert {**single["conditions"], "batch": BATCH} == batched["conditions"]
    write_results(tmp_path / "results", "shards.json", figures, gpu=None)
    found = load_figures(tmp_path / "results").get("batched_search_qps_per_replica")
    assert isinstance(found, Figure) and found.value == batched["value"]
