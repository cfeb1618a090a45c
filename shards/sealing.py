"""Building a sealed segment's FAISS index from its own vectors, at any segment size.

The size rule (plan_factory), for n vectors and the configured factory string:

1. `IVF{L}` needs about 39 training points per list (below that FAISS warns and k-means
   quality drops), so L is lowered to n // 39 when n < 39 * L.
2. If that leaves no list (n < 39), or a product quantizer `PQ{m}x{b}` (b = 8 when omitted,
   OPQ included) has fewer than 39 * 2**b training points, the segment is sealed as exact
   "Flat" instead: such a segment is small, so exact search costs little and loses nothing.
3. Any other factory string is used as given; if FAISS still cannot train it on n vectors,
   the segment falls back to "Flat" with a warning.

Sealed indexes label vectors by position 0..n-1, in the order given.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

MIN_POINTS_PER_CENTROID = 39
_IVF = re.compile(r"IVF(\d+)")
_PQ = re.compile(r"PQ(\d+)(?:x(\d+))?")
_LOSSLESS_SAMPLE = 64


def plan_factory(factory: str, n: int) -> str:
    """Return the index_factory string that seals n vectors (rule in the module docstring)."""
    if n < 1:
        raise ValueError(f"a sealed segment needs at least one vector, got n={n}")
    ivf = _IVF.search(factory)
    if ivf is not None:
        lists = n // MIN_POINTS_PER_CENTROID
        if lists < 1:
            return "Flat"
        if lists < int(ivf[1]):
            factory = f"{factory[: ivf.start(1)]}{lists}{factory[ivf.end(1) :]}"
    for pq in _PQ.finditer(factory):
        bits = int(pq[2] or 8)
        if n < MIN_POINTS_PER_CENTROID * 2**bits:
            return "Flat"
    return factory


def build_index(vectors: np.ndarray, factory: str, metric_type: int) -> faiss.Index:
    """Train an index of plan_factory(factory, n) on vectors and add them, labelled 0..n-1."""
    n, dim = vectors.shape
    planned = plan_factory(factory, n)
    try:
        index = faiss.index_factory(dim, planned, metric_type)
        index.train(vectors)
        index.add(vectors)
    except RuntimeError as exc:
        if planned == "Flat":
            raise
        log.warning("sealing %d vectors as %r failed (%s); sealing as Flat", n, planned, exc)
        index = faiss.IndexFlat(dim, metric_type)
        index.add(vectors)
    return index


def is_lossless(index: faiss.Index, vectors: np.ndarray) -> bool:
    """True when the index gives the stored vectors back bit for bit (Flat, IVF-Flat, HNSW)."""
    sample = min(len(vectors), _LOSSLESS_SAMPLE)
    try:
        restored = index.reconstruct_n(0, sample)
    except RuntimeError:
        return False
    return bool(np.array_equal(restored, vectors[:sample]))


def search_params(
    index: faiss.Index,
    selector: faiss.IDSelector | None,
    nprobe: int,
    ef_search: int,
    *,
    exhaustive: bool = False,
) -> tuple[faiss.SearchParameters, list[object]]:
    """Return search parameters for index, plus the objects they point to (keep them alive).

    exhaustive=True probes every IVF list and lets HNSW visit every vector: the fallback
    when a filtered search found fewer live vectors than asked for.
    """
    index = faiss.downcast_index(index)
    keep: list[object] = [selector]
    params: faiss.SearchParameters
    if isinstance(index, faiss.IndexPreTransform):
        inner, keep = search_params(index.index, selector, nprobe, ef_search, exhaustive=exhaustive)
        params = faiss.SearchParametersPreTransform()
        params.index_params = inner
        return params, [*keep, inner]
    if isinstance(index, faiss.IndexRefine):
        inner, keep = search_params(
            index.base_index, selector, nprobe, ef_search, exhaustive=exhaustive
        )
        params = faiss.IndexRefineSearchParameters()
        params.k_factor = index.k_factor
        params.base_index_params = inner
        return params, [*keep, inner]
    if isinstance(index, faiss.IndexIVF):
        params = faiss.SearchParametersIVF()
        params.nprobe = index.nlist if exhaustive else min(nprobe, index.nlist)
    elif isinstance(index, faiss.IndexHNSW):
        hnsw: Any = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # not in the stubs
        hnsw.efSearch = max(ef_search, int(index.ntotal)) if exhaustive else ef_search
        params = hnsw
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    return params, keep
