"""The routing benchmark end to end at a tiny size: its figures read back and hold together."""

import json
from pathlib import Path

from bench import routing_bench
from cluster.results_file import read_results


def test_a_tiny_routing_run_writes_consistent_figures(tmp_path: Path) -> None:
    out = tmp_path / "routing.json"
    argv = ["--n", "3000", "--dim", "16", "--queries", "60", "--shards", "4", "--groups", "16"]
    assert (
        routing_bench.main(
            [
                *argv,
                "--sample",
                "2000",
                "--nprobes",
                "1,8,16",
                "--mixtures",
                "4x4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    document = json.loads(out.read_text())["runs"][0]
    assert document["hash"]["shards_touched_fraction"] == 1.0
    assert document["hash"]["routing_recall_at_10"] == 1.0
    sweep = {point["route_nprobe"]: point for point in document["centroid"]["sweep"]}
    assert sweep[1]["shards_touched_mean"] == 1.0  # one group lives on one shard
    assert sweep[16]["shards_touched_fraction"] == 1.0  # every group: every shard
    assert sweep[16]["routing_recall_at_10"] == 1.0
    # Asking every shard, routing loses nothing: what is left is the per-shard index's loss.
    assert sweep[16]["recall_at_10"] >= document["hash"]["recall_at_10"] - 0.05
    touched = [sweep[p]["shards_touched_mean"] for p in (1, 8, 16)]
    assert touched == sorted(touched)
    results = read_results(out)
    assert not isinstance(results, str) and not results.problems
    figures = results.figures_named("routed_shards_touched_fraction")
    assert figures[0].conditions["route_nprobe"] == 8  # the config's default first
    assert figures[0].unit == "fraction" and 0 < figures[0].value <= 1
    assert {"shards", "groups", "route_nprobe", "recall_at_10"} <= set(figures[0].conditions)
