"""The scale benchmark end to end at a tiny size: its figures exist and hold together."""

import json
from pathlib import Path

from bench import scale_bench


def test_a_tiny_scale_run_writes_consistent_figures(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    argv = ["--n", "4000", "--dim", "32", "--segment", "1000", "--queries", "20"]
    assert scale_bench.main([*argv, "--repeats", "1", "--config", "ivf_pq", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["result"]
    assert result["segments"] == 4  # 4,000 pins in segments of 1,000
    assert result["recall_at_10"]["shard_index"] >= 0.9
    assert result["recall_at_10"]["shard_index"] >= result["recall_at_10"]["faiss_direct"] - 0.05
    memory = result["bytes_per_vector"]
    assert memory["disk_raw"] == 4 * 32 and memory["bookkeeping"] <= 64
    assert result["resident_bytes_per_vector"]["anon_beyond_faiss_index"] is not None
    assert set(result["swap_bytes_per_vector"]) == {
        "served_anon",
        "peak_growth_anon",
        "growth_anon",
    }
