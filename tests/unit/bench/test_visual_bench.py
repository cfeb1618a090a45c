"""The visual benchmark runs end to end at a tiny size and writes its figures."""

from __future__ import annotations

import json
from pathlib import Path

from bench.visual_bench import main


def test_a_tiny_run_writes_both_rates_and_their_baselines(tmp_path: Path) -> None:
    out = tmp_path / "visual.json"
    assert main(["--images", "16", "--repeats", "1", "--no-quality", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    for part in ("fetch_decode", "image_encoder"):
        assert results[part]["stage"]["median_per_s"] > 0 and results[part]["ratio"] > 0
    assert "quality" not in results and results["benchmark"] == "visual"
