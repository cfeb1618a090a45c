"""`pinstream plan` as the CLI wires it: one `add_plan_parser` call on its subparsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conf.config import load_config
from tests.unit.cluster.bench_files import write_all
from tests.unit.cluster.plan_args import ISSUE_ARGS, parse


def test_issue_example_parses() -> None:
    args = parse(ISSUE_ARGS)
    assert (args.pins, args.qps, args.ingest_rate) == (10_000_000_000, 2e6, 20000.0)
    assert (args.dim, args.index, args.results_dir) == (384, "IVF65536,PQ32", Path("bench/results"))


@pytest.mark.parametrize(
    "argv",
    [["--pins", "1.5"], ["--pins", "-3"], ["--qps", "nan"], ["--ingest-rate", "fast"]],
)
def test_bad_numbers_are_refused_by_the_parser(argv: list[str]) -> None:
    base = {"--pins": "10", "--qps": "1", "--ingest-rate": "1"}
    base.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    with pytest.raises(SystemExit):
        parse(["plan", *[x for pair in base.items() for x in pair]])


def test_run_prints_the_plan_and_cites_the_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_all(tmp_path)
    args = parse([*ISSUE_ARGS, "--results-dir", str(tmp_path)])
    assert args.run(load_config(), args) == 0
    out = capsys.readouterr().out
    assert out.startswith("pinstream capacity plan\n")
    assert f"{tmp_path / 'serving.json'} (2026-05-09T07:35:25Z)" in out
    assert "cpu-worker = r6i.16xlarge: 60 CPU, 448 GiB" in out


def test_dim_defaults_to_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(
        [
            "plan",
            "--pins",
            "1e6",
            "--qps",
            "10",
            "--ingest-rate",
            "1",
            "--results-dir",
            str(tmp_path),
        ]
    )
    assert args.run(load_config(), args) == 0
    assert "dim 384, ip, index Flat" in capsys.readouterr().out


def test_nprobe_is_optional_and_positive() -> None:
    assert parse(ISSUE_ARGS).nprobe is None
    assert parse([*ISSUE_ARGS, "--nprobe", "64"]).nprobe == 64
    for bad in ("0", "1.5"):
        with pytest.raises(SystemExit):
            parse([*ISSUE_ARGS, "--nprobe", bad])


def test_json_output_has_both_serving_columns_and_the_routing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_all(tmp_path)
    args = parse([*ISSUE_ARGS, "--results-dir", str(tmp_path), "--routing", "centroid", "--json"])
    assert args.run(load_config(), args) == 0
    plan = json.loads(capsys.readouterr().out)
    cpu, gpu = plan["serving"]["CPU serving"], plan["serving"]["GPU serving"]
    assert cpu["routing"] == "centroid" and cpu["fan_out_fraction"] < 1
    assert cpu["queries_per_shard"] == pytest.approx(2e6 * cpu["fan_out_fraction"])
    for column in (cpu, gpu):
        for key in ("shards", "replicas_per_shard", "nodes", "gpus", "ram_bytes"):
            assert column[key]["value"] is not None, key
    used = {f["key"] for f in plan["figures_used"]}
    assert {"routed_shards_touched_fraction", "gpu_search_qps"} <= used
