"""A shard's segments: the exact, mutable growing segment and immutable sealed segments.

A sealed segment holds vectors by position (the FAISS labels), the id at each position and a
dead mask. Replacing or deleting an id that lives in it only marks its position dead; searches
filter dead positions inside FAISS through an IDSelectorBitmap, and compaction drops them.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from conf.config import ShardsConfig, higher_is_better
from shards.raw_vectors import RawVectors, SpillDir
from shards.sealing import build_index, is_lossless, search_params


class GrowingSegment:
    """Exact, mutable FAISS segment that new writes go to; ids in it are unique."""

    def __init__(self, config: ShardsConfig) -> None:
        # The flat index is kept as its own Python object so that it survives freeze().
        self._flat = faiss.IndexFlat(config.dim, config.metric_type)
        # IndexIDMap2 (not IndexIDMap) so a stored vector can be read back by id.
        self._index = faiss.IndexIDMap2(self._flat)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Append vectors under ids not in this segment."""
        self._index.add_with_ids(vectors, keys)

    def discard(self, keys: np.ndarray) -> None:
        """Remove the vectors of ids held here."""
        if keys.size:
            self._index.remove_ids(faiss.IDSelectorBatch(keys))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k (k <= len(self)): scores and ids."""
        scores, keys = self._index.search(queries, k)
        return scores, keys

    def vector(self, key: int) -> np.ndarray:
        """A copy of the stored vector of an id held here."""
        return np.asarray(self._index.reconstruct(key), dtype=np.float32)

    def ids(self) -> np.ndarray:
        """The ids held, in position order."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def vectors(self) -> np.ndarray:
        """A copy of the stored vectors, in position order."""
        return self._flat.reconstruct_n(0, len(self))

    def freeze(self) -> SealedSegment:
        """Hand the vectors over, unchanged, as an exact frozen segment; stop using self after."""
        return SealedSegment(self.ids(), self._flat, raw=None, sealed=False)


class SealedSegment:
    """Immutable vectors by position, their ids and dead mask, and the index that searches them.

    A frozen segment (sealed=False) is the growing segment's exact flat index waiting for its
    sealed index to be built; it is searched exactly until then.
    """

    def __init__(
        self,
        ids: np.ndarray,
        index: faiss.Index,
        raw: RawVectors | None,
        *,
        sealed: bool,
        dead: np.ndarray | None = None,
    ) -> None:
        n = int(index.ntotal)
        if ids.shape != (n,) or (dead is not None and dead.shape != (n,)):
            raise ValueError(f"segment of {n} vectors got {ids.shape[0]} ids")
        if raw is not None and len(raw) != n:
            raise ValueError(f"segment of {n} vectors got {len(raw)} raw vectors")
        self.ids = ids
        self.index = index
        self.raw = raw
        self.sealed = sealed
        self.dead = np.zeros(n, dtype=bool) if dead is None else dead.astype(bool)
        self.n_dead = int(self.dead.sum())
        self._order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._order]
        # Search parameters by (exhaustive, nprobe, ef_search), with the objects they point
        # to (selector, packed live bits); rebuilt after positions die.
        self._params: dict[tuple[bool, int, int], tuple[faiss.SearchParameters, list[object]]] = {}

    @classmethod
    def build(
        cls, keys: np.ndarray, vectors: np.ndarray, config: ShardsConfig, spill: SpillDir
    ) -> SealedSegment:
        """Seal vectors under keys with the configured index, trained on these vectors."""
        index = build_index(vectors, config.sealed_index, config.metric_type)
        raw = None if is_lossless(index, vectors) else RawVectors.write(spill, vectors)
        return cls(keys, index, raw, sealed=True)

    @property
    def n(self) -> int:
        """Vectors stored, live or dead."""
        return int(self.ids.shape[0])

    @property
    def n_live(self) -> int:
        """Vectors stored and not dead."""
        return self.n - self.n_dead

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Positions of ids stored here (every id must be)."""
        slots = np.searchsorted(self._sorted_ids, keys)
        if not np.array_equal(self._sorted_ids[np.minimum(slots, self.n - 1)], keys):
            raise KeyError("some ids are not in this segment")
        return self._order[slots]

    def discard(self, keys: np.ndarray) -> None:
        """Mark the vectors of ids held here dead."""
        self.kill(self.positions(keys))

    def kill(self, positions: np.ndarray) -> None:
        """Mark positions dead."""
        if positions.size:
            self.dead[positions] = True
            self.n_dead = int(self.dead.sum())
            self._params.clear()

    def vectors_at(self, positions: np.ndarray) -> np.ndarray:
        """The stored vectors at positions, exact (raw copies for lossy indexes)."""
        if self.raw is not None:
            return self.raw.take(positions)
        if positions.size == 1:
            # reconstruct_n works without an IVF direct map, unlike reconstruct.
            return self.index.reconstruct_n(int(positions[0]), 1)
        return self.index.reconstruct_n(0, self.n)[positions]

    def vector(self, key: int) -> np.ndarray:
        """A copy of the stored vector of an id held here."""
        return self.vectors_at(self.positions(np.array([key], dtype=np.int64)))[0]

    def search(
        self, queries: np.ndarray, k: int, config: ShardsConfig
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-min(k, live) over live vectors: scores and ids, -1 where fewer were found.

        Filtered approximate search can find fewer live vectors than exist in the lists it
        probes; those queries are searched again exhaustively, so every query gets
        min(k, live) results.
        """
        want = min(k, self.n_live)
        scores, labels = self._search(queries, want, config, exhaustive=False)
        # Results come best first, so a row is short exactly when its last slot is empty.
        short = labels[:, want - 1] < 0
        if short.any():
            scores[short], labels[short] = self._search(
                queries[short], want, config, exhaustive=True
            )
        keys = self.ids[labels]
        keys[labels < 0] = -1
        return scores, keys

    def _search(
        self, queries: np.ndarray, want: int, config: ShardsConfig, *, exhaustive: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        rerank = self.raw is not None and config.rerank_factor > 0
        fetch = min(want * config.rerank_factor, self.n_live) if rerank else want
        scores, labels = self.index.search(
            queries, fetch, params=self._search_params(config, exhaustive)
        )
        if rerank:
            return self._rerank(queries, labels, want, config.metric)
        return scores, labels

    def _rerank(
        self, queries: np.ndarray, labels: np.ndarray, want: int, metric: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rescore candidates exactly from the raw vectors and keep the best `want`."""
        assert self.raw is not None
        m, fetch = labels.shape
        exact = np.empty((m, fetch), dtype=np.float32)
        # The kernels IndexRefineFlat uses; they score missing labels (-1) as worst.
        kernel: Any = (
            faiss.fvec_inner_products_by_idx  # type: ignore[attr-defined]  # not in the stubs
            if higher_is_better(metric)
            else faiss.fvec_L2sqr_by_idx  # type: ignore[attr-defined]
        )
        kernel(
            faiss.swig_ptr(exact),
            faiss.swig_ptr(queries),
            faiss.swig_ptr(self.raw.array),
            faiss.swig_ptr(labels),
            queries.shape[1],
            m,
            fetch,
        )
        ranking = -exact if higher_is_better(metric) else exact
        order = np.argsort(ranking, axis=1, kind="stable")[:, :want]
        return np.take_along_axis(exact, order, axis=1), np.take_along_axis(labels, order, axis=1)

    def _search_params(self, config: ShardsConfig, exhaustive: bool) -> faiss.SearchParameters:
        key = (exhaustive, config.nprobe, config.ef_search)
        if key not in self._params:
            selector, live_bits = None, None
            if self.n_dead:
                # Bit i of byte i // 8, little-endian: the layout IDSelectorBitmap reads.
                live_bits = np.packbits(~self.dead, bitorder="little")
                selector = faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(live_bits))
            params, keep = search_params(
                self.index, selector, config.nprobe, config.ef_search, exhaustive=exhaustive
            )
            self._params[key] = (params, [*keep, live_bits])
        return self._params[key][0]
