"""Which measured index stands in for the one a plan asks for, and how its figures scale.

The shard benchmark measures a few index specs on a few hundred thousand vectors; a plan
asks for a spec (e.g. `IVF65536,PQ32`) on a billion vectors per shard. A measurement
stands in for the plan's spec when it has the plan's dimension and the same code (what
follows the IVF part: `Flat`, `PQ32x8`, `SQ8`, ...), with IVF on both or on neither; the
spec itself, where measured, comes first. Its figures are then carried over by what
differs, and the planner prints each step as an assumption:

- memory: the bytes a replica keeps per vector (code, id, bookkeeping) do not depend on
  nlist; the measured index's own fixed bytes (centroids, codebooks) spread over its
  vectors are taken out, and the plan adds its spec's fixed bytes once per shard;
- search rate: the time of one search grows with the codes it compares, nprobe / nlist
  of a shard's vectors (all of them without IVF); the measured rate is scaled by the
  ratio of codes, down only, since per-request costs do not shrink.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluster.exceptions import PlanError
from cluster.index_memory import IndexMemory, index_memory
from cluster.results_file import Figure


@dataclass(frozen=True)
class StandIn:
    """A measured figure used for the plan's index, with the layout of the spec it measured."""

    figure: Figure
    measured: IndexMemory
    planned: IndexMemory

    @property
    def exact(self) -> bool:
        """Measured on the plan's own spec."""
        return self.measured.spec == self.planned.spec

    @property
    def vectors(self) -> int:
        """Vectors the measurement was taken on."""
        return int(self.figure.conditions["vectors"])

    def describe(self) -> str:
        """Which measurement stands in for which spec, and on what grounds."""
        f, m, p = self.figure, self.measured, self.planned
        what = f"{f.key}: {m.spec!r} measured on {self.vectors:,} vectors, from {f.cite()},"
        if self.exact:
            text = f"{what} is the plan's own index"
        else:
            nlist = f", {m.nlist:,} lists instead of {p.nlist:,}" if m.nlist != p.nlist else ""
            text = (
                f"{what} stands in for {p.spec!r}: same code ({m.encoding}, "
                f"{m.code_bytes} B per vector){nlist}"
            )
        rerank = f.conditions.get("rerank_factor")
        if isinstance(rerank, int) and rerank > 0:
            text += f"; measured re-ranking {rerank}x k candidates exactly, which the spec lacks"
        recall = f.conditions.get("recall_at_10")
        if isinstance(recall, int | float):
            text += f"; recall@10 {recall:.3f} there"
        return text


def find_stand_in(candidates: list[Figure], planned: IndexMemory) -> StandIn | str:
    """The measurement that stands in for `planned` (module docstring), or why none does."""
    usable: list[StandIn] = []
    seen: list[str] = []
    for figure in candidates:
        spec, dim = figure.conditions.get("index"), figure.conditions.get("dim")
        seen.append(f"index {spec!r} dim {dim}")
        if not isinstance(spec, str) or dim != planned.dim:
            continue
        try:
            measured = index_memory(spec, planned.dim)
        except PlanError:
            continue
        if measured.encoding == planned.encoding and bool(measured.nlist) == bool(planned.nlist):
            usable.append(StandIn(figure, measured, planned))
    if not usable:
        source = candidates[0].source if candidates else "the results"
        ivf = "with" if planned.nlist else "without"
        return (
            f"{source} measured {', '.join(seen) or 'nothing'}; none has the plan's code "
            f"({planned.encoding}, {ivf} IVF) at dim {planned.dim}"
        )
    return max(usable, key=lambda s: (s.exact, s.vectors))


def resident_per_vector(stand: StandIn) -> tuple[float, str]:
    """Bytes per vector for the plan from a measured resident size, and how it was derived."""
    measured = stand.figure.value
    fixed_share = stand.measured.fixed_bytes / stand.vectors
    if fixed_share >= measured:
        return measured, f"{measured:,.1f} B measured per vector, taken as is"
    value = measured - fixed_share
    carried = "" if stand.exact else ", taken not to depend on nlist"
    return value, (
        f"resident bytes per vector: {measured:,.1f} B measured less {fixed_share:,.1f} B of "
        f"fixed index bytes (centroids, codebooks) of {stand.measured.spec!r} spread over its "
        f"{stand.vectors:,} vectors = {value:,.1f} B{carried}; the fixed bytes of "
        f"{stand.planned.spec!r} are counted once per shard instead"
    )


@dataclass(frozen=True)
class SearchScale:
    """How a measured search rate carries over to the planned shard size and spec."""

    measured_codes: float
    planned_codes: float
    measured_nprobe: int
    planned_nprobe: int

    @property
    def factor(self) -> float:
        """Measured rate x factor = planned rate; never above 1."""
        return min(1.0, self.measured_codes / self.planned_codes)


def search_scale(stand: StandIn, vectors_per_shard: int, nprobe: int | None) -> SearchScale:
    """Scale by codes compared per search; `nprobe` None searches as the benchmark did.

    A measurement that states no nprobe (the GPU check's) is taken at the plan's.
    """
    measured_nprobe = int(stand.figure.conditions.get("nprobe") or nprobe or 1)
    planned_nprobe = nprobe or measured_nprobe
    return SearchScale(
        measured_codes=stand.measured.codes_scanned(stand.vectors, measured_nprobe),
        planned_codes=stand.planned.codes_scanned(vectors_per_shard, planned_nprobe),
        measured_nprobe=measured_nprobe,
        planned_nprobe=planned_nprobe,
    )


def describe_scale(stand: StandIn, scale: SearchScale, vectors_per_shard: int) -> str:
    """The search-rate scaling as one sentence, with its numbers."""
    m, p = stand.measured, stand.planned

    def scanned(layout: IndexMemory, vectors: int, nprobe: int, codes: float) -> str:
        if not layout.nlist:
            return f"{layout.spec!r} on {vectors:,} vectors compares all {codes:,.0f} codes"
        probed = min(nprobe, layout.nlist)
        return (
            f"{layout.spec!r} on {vectors:,} vectors with nprobe {probed} compares "
            f"{probed}/{layout.nlist:,} of them = {codes:,.0f} codes"
        )

    measured = scanned(m, stand.vectors, scale.measured_nprobe, scale.measured_codes)
    planned = scanned(p, vectors_per_shard, scale.planned_nprobe, scale.planned_codes)
    capped = " (never scaled up)" if scale.measured_codes > scale.planned_codes else ""
    return (
        f"search time per query grows with the codes it compares: measured {measured}; the "
        f"plan's {planned}; search QPS x {scale.factor:.3g}{capped}. The coarse step "
        "(nlist x dim per query) and per-request costs are not scaled"
    )
