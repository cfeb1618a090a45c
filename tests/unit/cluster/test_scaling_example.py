"""The 10e9 pins / 2e6 QPS example: the planner within 2x of the arithmetic in docs/scaling.md.

The expected numbers are read from a fixture that says where they come from (the sums
written out in the docs from the figures copied beside it), never from the planner.
"""

from __future__ import annotations

import json
from pathlib import Path

from cluster.bench_results import load_figures
from cluster.node_types import GIB, node_types
from cluster.planner import GPU_SERVING, PlanTarget, make_plan

FIXTURE = Path(__file__).parent / "fixtures" / "scaling_example"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "scaling.md"
SECTION = "## The example, worked from measured figures"


def within_2x(planned: float, written: float) -> bool:
    return written / 2 <= planned <= written * 2


def test_the_planner_is_within_2x_of_the_written_arithmetic() -> None:
    expected = json.loads((FIXTURE / "expected.json").read_text())
    plan = make_plan(PlanTarget(**expected["target"]), load_figures(FIXTURE), node_types())
    cpu, written = plan.serving["CPU serving"], expected["cpu_serving"]
    planned = {
        "shards": cpu.shards.value,
        "replicas_per_shard": cpu.replicas_per_shard.value,
        "cpu_worker_nodes": cpu.nodes.value,
        "ram_pib": (cpu.ram_bytes.value or 0) / (GIB << 20),
    }
    for key, value in written.items():
        assert planned[key] is not None and within_2x(planned[key], value), (key, planned[key])
    assert [f.key for f in plan.used if "search" in f.key] == ["batched_search_qps_per_replica"]
    # no GPU figure: the GPU column is unknown and says which file is missing
    assert expected["gpu_serving"] == "unmeasured"
    gpu = plan.serving[GPU_SERVING].replicas_per_shard
    assert gpu.value is None and "GPU serving unmeasured" in gpu.basis
    assert "gpu_check.json does not exist" in gpu.basis


def test_the_written_numbers_are_the_ones_on_the_docs_page() -> None:
    section = DOCS.read_text().split(SECTION)[1].split("\n## ")[0]
    expected = json.loads((FIXTURE / "expected.json").read_text())
    assert SECTION.removeprefix("## ") in expected["source"]
    for key, value in expected["cpu_serving"].items():
        shown = f"{value:,.1f} PiB" if key == "ram_pib" else f"{value:,}"
        assert f"**{shown}**" in section, key
    for name in ("shards.json", "serving.json"):
        source = json.loads((FIXTURE / name).read_text())
        assert source["date"] in section and source["date"] in expected["source"]
