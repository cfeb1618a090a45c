"""Which measured index stands in for the planned one, and how its figures carry over."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.index_memory import index_memory
from cluster.results_file import Figure
from cluster.stand_in import (
    StandIn,
    describe_scale,
    find_stand_in,
    resident_per_vector,
    search_scale,
)

PLANNED = index_memory("IVF65536,PQ32", 384)


def measured(index: str, value: float = 1000.0, dim: int = 384, **extra: object) -> Figure:
    conditions = {"index": index, "dim": dim, "vectors": 200_000, "nprobe": 32, **extra}
    return Figure(
        "search_qps_per_replica", value, "queries/s", conditions, Path("s.json"), "d", None
    )


def stand_in(candidates: list[Figure], planned=PLANNED) -> StandIn:
    found = find_stand_in(candidates, planned)
    assert isinstance(found, StandIn), found
    return found


def test_the_same_code_with_other_lists_stands_in() -> None:
    figures = [measured("IVF256,Flat"), measured("IVF1024,PQ32np", recall_at_10=0.41)]
    found = stand_in(figures)
    assert found.figure is figures[1] and not found.exact
    text = found.describe()
    assert "'IVF1024,PQ32np' measured on 200,000 vectors, from s.json (d)," in text
    assert "stands in for 'IVF65536,PQ32': same code (PQ32x8, 32 B per vector)" in text
    assert "1,024 lists instead of 65,536" in text and "recall@10 0.410 there" in text


def test_the_plans_own_index_comes_first() -> None:
    figures = [measured("IVF1024,PQ32", vectors=10**6), measured("IVF65536,PQ32")]
    found = stand_in(figures)
    assert found.exact and found.figure is figures[1]
    assert "is the plan's own index" in found.describe()


@pytest.mark.parametrize(
    ("figure", "planned"),
    [
        (measured("IVF256,Flat"), PLANNED),  # another code
        (measured("PQ32"), PLANNED),  # no IVF: every code scanned
        (measured("IVF1024,PQ32", dim=768), PLANNED),  # another dimension
        (measured("IVF256,PQ192x4fs"), index_memory("IVF256,PQ192", 384)),  # fast scan
        (measured("HNSW32"), PLANNED),  # not a spec the planner sizes
    ],
)
def test_another_code_ivf_layout_or_dim_does_not_stand_in(figure: Figure, planned) -> None:
    reason = find_stand_in([figure], planned)
    assert isinstance(reason, str)
    assert reason.startswith(f"s.json measured index {figure.conditions['index']!r}")
    assert f"none has the plan's code ({planned.encoding}, with" in reason


def test_re_ranking_the_spec_lacks_is_said() -> None:
    found = stand_in([measured("IVF1024,PQ32", rerank_factor=10)])
    assert "measured re-ranking 10x k candidates exactly, which the spec lacks" in found.describe()


def test_search_rate_scales_by_the_codes_compared() -> None:
    found = stand_in([measured("IVF1024,PQ32np")])
    scale = search_scale(found, 1_250_000_000, None)
    # 200,000 x 32/1024 = 6,250 codes measured; 1.25e9 x 32/65536 = 610,351.6 planned
    assert scale.measured_codes == 6250
    assert scale.planned_codes == pytest.approx(610_351.5625)
    assert scale.factor == pytest.approx(6250 / 610_351.5625)
    text = describe_scale(found, scale, 1_250_000_000)
    assert "compares 32/1,024 of them = 6,250 codes" in text
    assert "with nprobe 32 compares 32/65,536 of them = 610,352 codes" in text
    wider = search_scale(found, 1_250_000_000, 128)
    assert wider.planned_nprobe == 128 and wider.factor == pytest.approx(scale.factor / 4)


def test_search_rate_is_never_scaled_up() -> None:
    found = stand_in([measured("IVF1024,PQ32")])
    scale = search_scale(found, 1000, None)
    assert scale.factor == 1.0
    assert "(never scaled up)" in describe_scale(found, scale, 1000)


def test_flat_scans_every_vector() -> None:
    flat = index_memory("Flat", 384)
    found = stand_in([measured("Flat")], flat)
    scale = search_scale(found, 2_000_000, None)
    assert (scale.measured_codes, scale.planned_codes) == (200_000, 2_000_000)
    assert "on 200,000 vectors compares all 200,000 codes" in describe_scale(
        found, scale, 2 * 10**6
    )


def test_resident_bytes_leave_out_the_measured_fixed_bytes() -> None:
    figure = measured("IVF1024,PQ32np", value=800.0)
    found = stand_in([figure])
    fixed = index_memory("IVF1024,PQ32np", 384).fixed_bytes
    value, text = resident_per_vector(found)
    assert value == pytest.approx(800 - fixed / 200_000)
    assert "taken not to depend on nlist" in text
    assert "the fixed bytes of 'IVF65536,PQ32' are counted once per shard" in text
