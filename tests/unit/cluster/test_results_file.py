"""Reading one results file: figures (one or several measurements) and series, checked."""

from __future__ import annotations

import json
from pathlib import Path

from cluster.results_file import SCHEMA, SERIES, ResultsFile, read_results, read_results_dir
from tests.unit.cluster.bench_files import CREATED_AT, VALID, write_results

DOCS = Path(__file__).resolve().parents[3] / "docs" / "scaling.md"


def qps_on(index: str, value: float) -> dict:
    figure = json.loads(json.dumps(VALID["search_qps_per_replica"]))
    figure["conditions"]["index"] = index
    figure["value"] = value
    return figure


def read(path: Path) -> ResultsFile:
    results = read_results(path)
    assert isinstance(results, ResultsFile), results
    return results


def test_a_figure_measured_under_several_conditions_keeps_every_measurement(
    tmp_path: Path,
) -> None:
    measured = [qps_on("IVF256,Flat", 300.0), qps_on("IVF1024,PQ32", 2000.0)]
    path = write_results(tmp_path, "shards.json", {"search_qps_per_replica": measured})
    results = read(path)
    found = results.figures_named("search_qps_per_replica")
    assert [f.conditions["index"] for f in found] == ["IVF256,Flat", "IVF1024,PQ32"]
    assert [f.value for f in found] == [300.0, 2000.0]
    assert found[0].cite() == f"{path} ({CREATED_AT})"
    assert found[0].gpu == "NVIDIA A10G"


def test_a_malformed_measurement_is_set_aside_with_its_place(tmp_path: Path) -> None:
    measured = [qps_on("IVF256,Flat", 300.0), {"value": "fast", "unit": "queries/s"}]
    path = write_results(tmp_path, "shards.json", {"search_qps_per_replica": measured, "x": 3})
    results = read(path)
    assert len(results.figures_named("search_qps_per_replica")) == 1
    assert results.problems == {
        "search_qps_per_replica": [
            f"{path}: figures.search_qps_per_replica[1].value is not a number"
        ],
        "x": [f"{path}: figures.x is not a mapping"],
    }


def test_series_of_numbers_and_of_points_are_read(tmp_path: Path) -> None:
    series = {
        "freshness_s": {"conditions": {"rate_per_s": 50}, "points": [0.8, 1.2, 3]},
        "streaming_recall_at_10": {
            "points": [{"step": 1, "op": "insert", "live": 10, "recall_at_10": 1.0}]
        },
        "something_else": {"points": ["any", "thing"]},
    }
    results = read(write_results(tmp_path, "ingest.json", {}, series=series))
    assert results.series["freshness_s"].points == [0.8, 1.2, 3]
    assert results.series["freshness_s"].conditions == {"rate_per_s": 50}
    assert results.series["streaming_recall_at_10"].points[0]["op"] == "insert"
    assert "something_else" in results.series
    assert results.problems == {}


def test_a_malformed_series_is_set_aside_with_its_reason(tmp_path: Path) -> None:
    series = {
        "freshness_s": {"points": [0.8, "late"]},
        "latency_vs_offered_qps": {"points": [{"offered_qps": 10, "qps": 9, "p50_ms": 3}]},
        "streaming_recall_at_10": {"points": []},
    }
    path = write_results(tmp_path, "serving.json", {}, series=series)
    results = read(path)
    assert results.series == {}
    assert results.problems == {
        "freshness_s": [f"{path}: series.freshness_s.points[1] is not a number"],
        "latency_vs_offered_qps": [
            f"{path}: series.latency_vs_offered_qps.points[0] lacks numbers for p99_ms"
        ],
        "streaming_recall_at_10": [
            f"{path}: series.streaming_recall_at_10.points is not a non-empty list"
        ],
    }


def test_unreadable_files_give_their_reason(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.json").write_text(json.dumps({"schema": SCHEMA, "date": "d", "figures": []}))
    (tmp_path / "c.json").write_text(
        json.dumps({"schema": SCHEMA, "date": "d", "figures": {}, "series": []})
    )
    write_results(tmp_path, "d.json", {})
    files = read_results_dir(tmp_path)
    assert [p.name for p in files] == ["a.json", "b.json", "c.json", "d.json"]
    a, b, c, d = files.values()
    assert isinstance(a, str) and "is not valid JSON" in a
    assert isinstance(b, str) and "has no figures mapping" in b
    assert isinstance(c, str) and "series is not a mapping" in c
    assert isinstance(d, ResultsFile) and d.figures == []


def test_scaling_doc_lists_every_series() -> None:
    text = DOCS.read_text()
    for spec in SERIES.values():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{spec.key}` |")]
        assert len(rows) == 1, spec.key
        assert f"`{spec.file}`" in rows[0], spec.key
