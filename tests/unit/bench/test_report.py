"""The benchmark report: a table of every figure, and PNG plots of the recorded series."""

from __future__ import annotations

from pathlib import Path

from bench.report import PLOTS, write_report
from tests.unit.cluster.bench_files import CREATED_AT, VALID, write_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LATENCY = [
    {"mode": mode, "offered_qps": q, "qps": q * 0.98, "p50_ms": 10 + q / 10, "p99_ms": 30 + q}
    for mode in ("serve_vector", "serve_text")
    for q in (10.0, 20.0, 40.0)
]
RECALL = [
    {"step": 1, "op": "insert", "rows": 100, "live": 100, "recall_at_10": 1.0},
    {"step": 2, "op": "delete", "rows": 50, "live": 50, "recall_at_10": 0.97},
    {"step": 3, "op": "reinsert", "rows": 50, "live": 100, "recall_at_10": 0.99},
]


def write_fixtures(results: Path) -> None:
    qps = [
        VALID["search_qps_per_replica"],
        {**VALID["search_qps_per_replica"], "value": 2500.0},
    ]
    write_results(
        results,
        "shards.json",
        {
            "search_qps_per_replica": qps,
            "streaming_mean_recall_at_10": {
                "value": 0.9867,
                "unit": "recall",
                "conditions": {"sealed_index": "IVF256,Flat", "dead": 0.123456},
            },
        },
        gpu=None,
        series={"streaming_recall_at_10": {"conditions": {"vectors": 200}, "points": RECALL}},
    )
    write_results(
        results,
        "serving.json",
        {"ingress_qps_per_replica": VALID["ingress_qps_per_replica"]},
        series={"latency_vs_offered_qps": {"points": LATENCY}},
    )
    # ingest.json is written by an older benchmark: figures, no series.
    write_results(
        results,
        "ingest.json",
        {"throughput_ratio_to_raw_encoder": VALID["throughput_ratio_to_raw_encoder"]},
    )


def test_every_figure_is_a_row_of_the_table(tmp_path: Path) -> None:
    write_fixtures(tmp_path)
    text = write_report(tmp_path, tmp_path / "out" / "report.md")
    assert (tmp_path / "out" / "report.md").read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    expected = [
        ("throughput_ratio_to_raw_encoder", "0.8", "ratio", "ingest.json", "NVIDIA A10G"),
        ("ingress_qps_per_replica", "2,000", "queries/s", "serving.json", "NVIDIA A10G"),
        ("search_qps_per_replica", "800", "queries/s", "shards.json", "no GPU"),
        ("search_qps_per_replica", "2,500", "queries/s", "shards.json", "no GPU"),
        ("streaming_mean_recall_at_10", "0.987", "recall", "shards.json", "16 CPU, test"),
    ]
    for key, value, unit, file, machine in expected:
        matching = [
            row
            for row in rows
            if row.startswith(f"| {key} | {value} | {unit} |")
            and f"| {file} | {CREATED_AT} |" in row
            and machine in row
        ]
        assert len(matching) == 1, (key, value, rows)
    assert "index=IVF65536,PQ32, dim=384, vectors=100000000" in text
    assert "sealed_index=IVF256,Flat, dead=0.1235 |" in text  # floats in 4 digits
    assert len(rows) == 2 + len(expected)  # header, rule, one row per measurement


def test_plots_are_png_files_the_report_references(tmp_path: Path) -> None:
    write_fixtures(tmp_path)
    text = write_report(tmp_path, tmp_path / "report.md")
    for name in ("latency_vs_qps.png", "streaming_recall.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC), name
        assert f"]({name})" in text
    assert "3 steps: mean recall@10 0.9867, min 0.9700" in text
    assert "6 load levels over serve_text, serve_vector" in text


def test_a_missing_series_is_stated_and_not_drawn(tmp_path: Path) -> None:
    write_fixtures(tmp_path)
    (tmp_path / "freshness.png").write_bytes(PNG_MAGIC)  # left from an earlier run
    text = write_report(tmp_path, tmp_path / "report.md")
    assert "**Not plotted:** `ingest.json` has no `freshness_s` series" in text
    assert "freshness.png" not in text
    assert not (tmp_path / "freshness.png").exists()


def test_a_missing_file_or_a_malformed_series_is_stated(tmp_path: Path) -> None:
    write_results(
        tmp_path,
        "ingest.json",
        {"pipeline_pins_per_s": {"value": "fast", "unit": "pins/s"}},
        series={"freshness_s": {"points": [0.5, None]}},
    )
    text = write_report(tmp_path, tmp_path / "report.md")
    assert (
        f"no `latency_vs_offered_qps` series ({tmp_path / 'serving.json'} does not exist)" in text
    )
    assert "the `freshness_s` series is malformed" in text
    assert "series.freshness_s.points[1] is not a number" in text
    assert "## Set aside" in text and "figures.pipeline_pins_per_s.value is not a number" in text
    assert not any((tmp_path / plot.file).exists() for plot in PLOTS)


def test_freshness_samples_are_drawn_and_summarised(tmp_path: Path) -> None:
    samples = [0.5 + i / 100 for i in range(200)]
    write_results(tmp_path, "ingest.json", {}, series={"freshness_s": {"points": samples}})
    text = write_report(tmp_path, tmp_path / "report.md")
    assert (tmp_path / "freshness.png").read_bytes().startswith(PNG_MAGIC)
    assert "](freshness.png)" in text
    assert "200 pins: p50 1.50 s" in text
