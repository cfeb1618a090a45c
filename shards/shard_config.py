"""ShardConfig: how one shard indexes, seals, searches and compacts its vectors."""

from dataclasses import dataclass
from typing import Any

import faiss

METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


@dataclass(frozen=True)
class ShardConfig:
    """How one shard indexes its vectors; every field but dim has a default.

    dim, metric: vector dimension and "ip" (inner product) or "l2" (squared L2).
    sealed_index: faiss index_factory string for sealed segments, trained on each segment's own
        vectors; lowered for small segments (see shards.sealing.plan_factory).
    growing_limit: vectors in the exact growing segment before it is sealed in the background.
    nprobe, ef_search: search-time parameters of IVF and HNSW sealed indexes.
    rerank_factor: lossy sealed segments (PQ, SQ) fetch k * rerank_factor candidates and rescore
        them exactly from the raw vectors they keep on local disk; 0 turns reranking off.
    compact_dead_fraction: compaction starts in the background once this fraction of the
        vectors in sealed segments is dead (deleted or replaced); 1.0 waits until all are.
    """

    dim: int
    metric: str = "ip"
    sealed_index: str = "IVF256,Flat"
    growing_limit: int = 50_000
    nprobe: int = 32
    ef_search: int = 64
    rerank_factor: int = 4
    compact_dead_fraction: float = 0.2

    def __post_init__(self) -> None:
        _positive_int("dim", self.dim)
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {self.metric!r}")
        for name in ("growing_limit", "nprobe", "ef_search"):
            _positive_int(name, getattr(self, name))
        if isinstance(self.rerank_factor, bool) or not isinstance(self.rerank_factor, int):
            raise ValueError(f"rerank_factor must be an int >= 0, got {self.rerank_factor!r}")
        if self.rerank_factor < 0:
            raise ValueError(f"rerank_factor must be an int >= 0, got {self.rerank_factor!r}")
        fraction = self.compact_dead_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise ValueError(f"compact_dead_fraction must be a number, got {fraction!r}")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"compact_dead_fraction must be in (0, 1], got {fraction!r}")
        _check_factory(self.sealed_index, self.dim, self.metric)

    @property
    def metric_type(self) -> int:
        """The FAISS metric constant of `metric`."""
        return METRICS[self.metric]


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _check_factory(factory: Any, dim: int, metric: str) -> None:
    """Refuse a sealed_index string that FAISS cannot build for this dim and metric."""
    if not isinstance(factory, str) or not factory.strip():
        raise ValueError(f"sealed_index must be a faiss index_factory string, got {factory!r}")
    if "IDMap" in factory:
        # Sealed segments label vectors by position and map positions to ids themselves.
        raise ValueError(f"sealed_index must not contain IDMap, got {factory!r}")
    try:
        faiss.index_factory(dim, factory, METRICS[metric])
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        raise ValueError(
            f"sealed_index {factory!r} is not a valid faiss index_factory string for dim {dim}: "
            f"{first_line}"
        ) from exc
