"""Reading benchmark figures: found, or missing with a reason a person can act on."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cluster.bench_results import FIGURES, RUN_BENCH, Figure, Missing, load_figures
from tests.unit.cluster.bench_files import CREATED_AT, FILES, VALID, write_all, write_results

DOCS = Path(__file__).resolve().parents[3] / "docs" / "scaling.md"


def test_every_figure_is_found_with_its_source_and_date(tmp_path: Path) -> None:
    write_all(tmp_path)
    figures = load_figures(tmp_path)
    assert figures.missing == {}
    found = figures.get("search_qps_per_replica")
    assert isinstance(found, Figure)
    assert found.value == 800.0 and found.conditions["threads"] == 4
    assert found.cite() == f"{tmp_path / 'shards.json'} ({CREATED_AT})"


def test_no_results_folder_means_every_figure_is_missing(tmp_path: Path) -> None:
    figures = load_figures(tmp_path / "absent")
    assert figures.found == {}
    assert sorted(figures.missing) == sorted(FIGURES)
    line = figures.get("search_qps_per_replica")
    assert isinstance(line, Missing)
    assert line.explain("query QPS per shard replica").startswith(
        "query QPS per shard replica: no benchmark result ("
    )
    assert line.explain("x").endswith(f"; {RUN_BENCH})")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: f.pop("value"), "value is not a number"),
        (lambda f: f.update(value=True), "value is not a number"),
        (lambda f: f.update(value=0), "must be a finite number > 0"),
        (lambda f: f.update(unit="qps"), "unit is 'qps', expected 'queries/s'"),
        (lambda f: f["conditions"].pop("threads"), "conditions lacks threads"),
    ],
)
def test_a_bad_figure_is_missing_with_its_reason(tmp_path: Path, change, reason: str) -> None:
    figure = copy.deepcopy(VALID["search_qps_per_replica"])
    change(figure)
    write_results(tmp_path, "shards.json", {"search_qps_per_replica": figure})
    found = load_figures(tmp_path).get("search_qps_per_replica")
    assert isinstance(found, Missing)
    assert reason in found.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "is not valid JSON (line 1"),
        ('{"schema": "other/2"}', "has schema 'other/2', expected 'pinstream.bench/1'"),
        ('{"schema": "pinstream.bench/1", "figures": {}}', "has no date"),
    ],
)
def test_a_bad_file_makes_its_figures_missing(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "ingest.json").write_text(text)
    figures = load_figures(tmp_path)
    for key in FILES["ingest.json"]:
        found = figures.get(key)
        assert isinstance(found, Missing) and reason in found.reason


def test_per_gpu_figures_need_the_gpu_named(tmp_path: Path) -> None:
    write_all(tmp_path, gpu=None)
    figures = load_figures(tmp_path)
    assert sorted(figures.missing) == [
        "embed_sentences_per_s_per_gpu",
        "gpu_encoder_sentences_per_s",
        "gpu_search_qps",
        "query_encoder_qps_per_gpu",
    ]
    assert "measured without a GPU" in figures.missing["embed_sentences_per_s_per_gpu"].reason


def test_asking_for_an_unknown_figure_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="not a planner figure"):
        load_figures(tmp_path).get("qps")


def test_scaling_doc_lists_every_file_key_unit_and_condition() -> None:
    text = DOCS.read_text()
    for spec in FIGURES.values():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{spec.key}` |")]
        assert len(rows) == 1, spec.key
        (row,) = rows
        assert f"`{spec.file}`" in row and spec.unit in row, spec.key
        for condition in spec.conditions:
            assert f"`{condition}`" in row, (spec.key, condition)


def test_a_gpu_figure_absent_from_a_run_without_gpu_says_so(tmp_path: Path) -> None:
    write_results(tmp_path, "serving.json", {}, gpu=None)
    found = load_figures(tmp_path).get("query_encoder_qps_per_gpu")
    assert isinstance(found, Missing)
    assert found.reason.endswith(
        "figures.query_encoder_qps_per_gpu is absent, "
        "and that run had no GPU (machine.gpu is not set)"
    )


def test_every_usable_measurement_is_a_candidate_the_first_found(tmp_path: Path) -> None:
    flat = copy.deepcopy(VALID["search_qps_per_replica"])
    flat["conditions"]["index"] = "IVF256,Flat"
    broken = copy.deepcopy(flat)
    broken["conditions"].pop("threads")
    pq = copy.deepcopy(VALID["search_qps_per_replica"])
    write_results(tmp_path, "shards.json", {"search_qps_per_replica": [flat, broken, pq]})
    figures = load_figures(tmp_path)
    candidates = figures.candidates("search_qps_per_replica")
    assert [f.conditions["index"] for f in candidates] == ["IVF256,Flat", "IVF65536,PQ32"]
    assert figures.get("search_qps_per_replica") is candidates[0]
    assert figures.candidates("resident_bytes_per_vector") == []


def test_a_key_with_no_usable_measurement_gives_each_reason(tmp_path: Path) -> None:
    bad = copy.deepcopy(VALID["search_qps_per_replica"])
    bad["unit"] = "qps"
    write_results(tmp_path, "shards.json", {"search_qps_per_replica": [bad, {"value": None}]})
    found = load_figures(tmp_path).get("search_qps_per_replica")
    assert isinstance(found, Missing)
    assert "figures.search_qps_per_replica[1].value is not a number" in found.reason
    assert "(index 'IVF65536,PQ32'): unit is 'qps', expected 'queries/s'" in found.reason
