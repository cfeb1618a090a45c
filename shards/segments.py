"""A shard's segments: the exact, mutable growing segment and immutable sealed segments.

A segment holds vectors by position (the FAISS labels) and, in numpy arrays aligned with
positions, the id at each position, a tag (a dictionary-encoded group such as a board) and a
dead mask; optionally a payload table (what the API returns about each vector) with one row
per position. Replacing or deleting an id that lives in a segment only marks its position
dead; searches filter dead positions inside FAISS through an IDSelectorBitmap, and compaction
drops them.

A filtered search never searches deeper and deeper: the positions that pass the filter come
from the segment's tag postings (positions grouped by tag) in O(matches); when they are
fewer than an unfiltered search would scan, they alone are scored exactly, otherwise they
become the IDSelector of one FAISS search. A filter matching nothing costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
import pyarrow as pa

from conf.config import ShardsConfig, higher_is_better
from shards.sealing import build_index, is_lossless, search_params
from shards.search_device import SearchDevice, drop_dead
from shards.spill import (
    RawVectors,
    SpillDir,
    SpillFile,
    npy_sha256,
    segment_digest,
    write_index,
    write_payload,
)
from shards.top_k import worst_score

# HNSW visits about this many vectors per unit of ef_search: the scan budget of a filter.
HNSW_VISITS_PER_EF = 16
_NO_POSITIONS = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Selection:
    """Which vectors a search may return: tags in `tags` (None = any), positions not excluded.

    `excluded` are positions in the segment being searched (ShardIndex maps ids to them).
    """

    tags: np.ndarray | None = None
    excluded: np.ndarray = field(default_factory=lambda: _NO_POSITIONS)


class Segment:
    """Vectors by position with ids, tags, dead mask and payload; searched through `index`."""

    ids: np.ndarray
    tags: np.ndarray
    dead: np.ndarray
    index: faiss.Index
    raw: RawVectors | None
    payload: pa.Table | None
    sealed: bool
    n_dead: int
    rows_examined: int  # vectors scored by filtered searches (the work a filter costs)
    slot: int = -1  # the shard's number for this segment (its key table's slot column)

    @property
    def n(self) -> int:
        """Vectors stored, live or dead."""
        return int(self.ids.shape[0])

    @property
    def n_live(self) -> int:
        """Vectors stored and not dead."""
        return self.n - self.n_dead

    def kill(self, positions: np.ndarray) -> None:
        """Mark positions dead."""
        if positions.size:
            self.dead[positions] = True
            self.n_dead = int(self.dead.sum())
            self._params_changed()

    def vectors_at(self, positions: np.ndarray) -> np.ndarray:
        """The stored vectors at positions, exact (raw copies for lossy indexes)."""
        if self.raw is not None:
            return self.raw.take(positions)
        return np.asarray(self.index.reconstruct_batch(positions), dtype=np.float32)

    def payload_at(self, positions: np.ndarray) -> pa.Table:
        """Payload rows at positions, in that order."""
        assert self.payload is not None, "this index keeps no payload"
        return self.payload.take(pa.array(positions, pa.int64()))

    def selected(self, selection: Selection) -> np.ndarray:
        """Live positions that pass selection, sorted; O(matches) for a tag filter."""
        if selection.tags is None:
            positions = np.flatnonzero(~self.dead)
        else:
            codes, starts, order = self._postings()
            at = np.searchsorted(codes, selection.tags)
            at = at[(at < codes.size) & (codes[np.minimum(at, codes.size - 1)] == selection.tags)]
            if at.size == 0:
                return _NO_POSITIONS
            positions = np.sort(np.concatenate([order[starts[i] : starts[i + 1]] for i in at]))
            positions = positions[~self.dead[positions]]
        if selection.excluded.size:
            positions = positions[~np.isin(positions, selection.excluded)]
        return positions.astype(np.int64, copy=False)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        config: ShardsConfig,
        selection: Selection | None = None,
        device: SearchDevice | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-min(k, passing) over live vectors that pass selection: scores and positions,
        -1 where fewer were found. device: where an unfiltered search of a sealed segment may
        run (shards/search_device.py); filtered ones run on the CPU."""
        if selection is None:
            want = min(k, self.n_live)
            if want == 0:
                return _empty_result(queries.shape[0])
            return self._search_index(queries, want, config, None, device)
        positions = self.selected(selection)
        want = min(k, positions.size)
        if want == 0:
            return _empty_result(queries.shape[0])
        if positions.size <= self.scan_budget(config):
            self.rows_examined += positions.size * queries.shape[0]
            return self.score_exactly(queries, positions, want, config.metric)
        return self._search_index(queries, want, config, positions)

    def score_exactly(
        self, queries: np.ndarray, positions: np.ndarray, k: int, metric: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among the vectors at positions: scores and positions."""
        metric_type = faiss.METRIC_INNER_PRODUCT if higher_is_better(metric) else faiss.METRIC_L2
        scores, rows = faiss.knn(queries, self.vectors_at(positions), k, metric=metric_type)
        found = positions[np.maximum(rows, 0)]
        found[rows < 0] = -1
        return scores, found

    def scan_budget(self, config: ShardsConfig) -> int:
        """About how many vectors one unfiltered search of this segment scores."""
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            return self.n * min(config.nprobe, ivf.nlist) // ivf.nlist
        if isinstance(faiss.downcast_index(self.index), faiss.IndexHNSW):
            return config.ef_search * HNSW_VISITS_PER_EF
        return self.n

    def _search_index(
        self,
        queries: np.ndarray,
        want: int,
        config: ShardsConfig,
        allowed: np.ndarray | None,
        device: SearchDevice | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search over live positions (or `allowed` ones); rows left short by the
        probed lists are searched again exhaustively, so every query gets `want` results."""
        scores, labels = self._faiss_search(
            queries, want, config, allowed, device, exhaustive=False
        )
        # Results come best first, so a row is short exactly when its last slot is empty.
        short = labels[:, want - 1] < 0
        if short.any():
            scores[short], labels[short] = self._faiss_search(
                queries[short], want, config, allowed, device, exhaustive=True
            )
        return scores, labels

    def _faiss_search(
        self,
        queries: np.ndarray,
        want: int,
        config: ShardsConfig,
        allowed: np.ndarray | None,
        device: SearchDevice | None,
        *,
        exhaustive: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        rerank = self.raw is not None and config.rerank_factor > 0
        passing = self.n_live if allowed is None else allowed.size
        fetch = min(want * config.rerank_factor, passing) if rerank else want
        on_device = None
        if allowed is None and device is not None:
            on_device = self._device_search(queries, fetch, config, device, exhaustive)
        if on_device is not None:
            scores, labels = on_device
        elif allowed is None:
            params = self._live_params(config, exhaustive)
            scores, labels = self.index.search(queries, fetch, params=params)
        else:
            # A filter is an IDSelector, which GPU indexes do not take: always the CPU.
            bits = np.zeros(self.n, dtype=bool)
            bits[allowed] = True
            packed = np.packbits(bits, bitorder="little")
            selector = faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(packed))
            params, _keep = search_params(
                self.index, selector, config.nprobe, config.ef_search, exhaustive=exhaustive
            )
            scores, labels = self.index.search(queries, fetch, params=params)
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

    def _device_search(
        self,
        queries: np.ndarray,
        fetch: int,
        config: ShardsConfig,
        device: SearchDevice,
        exhaustive: bool,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The `fetch` best live positions per query, searched on the device; None when this
        segment is searched on the CPU (shards/search_device.py says when)."""
        if not self.sealed or device.on_cpu:
            return None
        # Ask past the dead positions: at most n_dead of the results are dead.
        asked = min(fetch + self.n_dead, self.n)
        ivf = faiss.try_extract_index_ivf(self.index)
        nprobe = 0 if ivf is None else (ivf.nlist if exhaustive else min(config.nprobe, ivf.nlist))
        if max(asked, nprobe) > device.max_k:
            return None
        copy = device.copy_of(self.index, self.index_in_memory)
        if copy is None:
            return None
        params, _keep = search_params(
            self.index, None, config.nprobe, config.ef_search, exhaustive=exhaustive
        )
        # GPU indexes refuse parameter classes they do not read; a Flat index reads none.
        passed = None if type(params) is faiss.SearchParameters else params
        scores, labels = device.search(copy, queries, asked, passed)
        if not self.n_dead:
            return scores, labels
        return drop_dead(scores, labels, self.dead, fetch, worst_score(config.metric))

    def index_in_memory(self) -> faiss.Index:
        """The segment's index held in memory, not mapped from a file: what a device copies."""
        return self.index

    def _live_params(self, config: ShardsConfig, exhaustive: bool) -> faiss.SearchParameters:
        raise NotImplementedError

    def _params_changed(self) -> None:
        raise NotImplementedError

    def _postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError


class GrowingSegment(Segment):
    """Exact, mutable segment that new writes go to, up to `capacity` vectors."""

    def __init__(
        self, config: ShardsConfig, capacity: int, payload_schema: pa.Schema | None
    ) -> None:
        self.index = faiss.IndexFlat(config.dim, config.metric_type)
        self.raw = None
        self.sealed = False
        self.n_dead = 0
        self.rows_examined = 0
        self._ids = np.empty(capacity, dtype=np.int64)
        self._tags = np.empty(capacity, dtype=np.int32)
        self._dead = np.zeros(capacity, dtype=bool)
        self._schema = payload_schema
        self._chunks: list[pa.Table] = []
        self.payload = None
        self._size = 0
        self._views()

    def __len__(self) -> int:
        return self._size

    @property
    def free(self) -> int:
        """How many more vectors fit."""
        return self._ids.size - self._size

    def add(
        self, keys: np.ndarray, vectors: np.ndarray, tags: np.ndarray, payload: pa.Table | None
    ) -> np.ndarray:
        """Append vectors (at most `free`); return their positions."""
        start, end = self._size, self._size + keys.size
        if end > self._ids.size:
            raise ValueError(f"growing segment overflow: {end} > {self._ids.size}")
        self.index.add(vectors)
        self._ids[start:end] = keys
        self._tags[start:end] = tags
        if self._schema is not None:
            assert payload is not None and payload.num_rows == keys.size
            self._chunks.append(payload)
        self._size = end
        self._views()
        return np.arange(start, end, dtype=np.int64)

    def freeze(self) -> SealedSegment:
        """Hand the vectors over, unchanged, as an exact frozen segment; stop using self after."""
        return SealedSegment(
            self.ids.copy(),
            self.tags.copy(),
            self.index,
            raw=None,
            payload=self._payload(),
            sealed=False,
            dead=self.dead.copy(),
        )

    def _views(self) -> None:
        self.ids = self._ids[: self._size]
        self.tags = self._tags[: self._size]
        self.dead = self._dead[: self._size]

    def payload_at(self, positions: np.ndarray) -> pa.Table:
        """Payload rows at positions, in that order."""
        payload = self._payload()
        assert payload is not None, "this index keeps no payload"
        return payload.take(pa.array(positions, pa.int64()))

    def _payload(self) -> pa.Table | None:
        if self._schema is None:
            return None
        if len(self._chunks) != 1:  # joined once per change, not per lookup
            self._chunks = [pa.concat_tables(self._chunks or [self._schema.empty_table()])]
        return self._chunks[0]

    def _live_params(self, config: ShardsConfig, exhaustive: bool) -> faiss.SearchParameters:
        params = faiss.SearchParameters()
        if self.n_dead:
            self._bits = np.packbits(~self.dead, bitorder="little")
            self._selector = faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(self._bits))
            params.sel = self._selector
        return params

    def _params_changed(self) -> None:
        pass

    def _postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _postings(self.tags)


class SealedSegment(Segment):
    """Immutable vectors by position, their ids, tags, payload and dead mask, and the index
    that searches them; the heavy parts live in spill files (shards/spill.py).

    A frozen segment (sealed=False) is the growing segment's exact flat index waiting for its
    sealed index to be built; it is searched exactly until then.
    """

    def __init__(
        self,
        ids: np.ndarray,
        tags: np.ndarray,
        index: faiss.Index,
        raw: RawVectors | None,
        payload: pa.Table | None,
        *,
        sealed: bool,
        dead: np.ndarray | None = None,
        files: dict[str, SpillFile] | None = None,
    ) -> None:
        n = int(index.ntotal)
        if ids.shape != (n,) or tags.shape != (n,) or (dead is not None and dead.shape != (n,)):
            raise ValueError(f"segment of {n} vectors got {ids.shape[0]} ids, {tags.shape} tags")
        if raw is not None and len(raw) != n:
            raise ValueError(f"segment of {n} vectors got {len(raw)} raw vectors")
        if payload is not None and payload.num_rows != n:
            raise ValueError(f"segment of {n} vectors got {payload.num_rows} payload rows")
        self.ids = ids
        self.tags = tags
        self.index = index
        self.raw = raw
        self.payload = payload
        self.sealed = sealed
        self.files = dict(files or {})  # spill files by role: index, raw, payload
        # What a snapshot's copy of this segment is recognised by (spill.segment_digest).
        self.digest: str | None = None
        self.dead = np.zeros(n, dtype=bool) if dead is None else dead.astype(bool)
        self.n_dead = int(self.dead.sum())
        self.rows_examined = 0
        self._postings_cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # Search parameters by (exhaustive, nprobe, ef_search), with the objects they point
        # to (selector, packed live bits); rebuilt after positions die.
        self._params: dict[tuple[bool, int, int], tuple[faiss.SearchParameters, list[object]]] = {}

    @classmethod
    def build(
        cls,
        keys: np.ndarray,
        vectors: np.ndarray,
        tags: np.ndarray,
        payload: pa.Table | None,
        config: ShardsConfig,
        spill: SpillDir,
    ) -> SealedSegment:
        """Seal vectors under keys with the configured index, trained on these vectors; the
        index, payload and (lossy indexes) raw vectors are written to spill and mapped."""
        index = build_index(vectors, config.sealed_index, config.metric_type)
        raw = None
        files: dict[str, SpillFile] = {}
        if is_lossless(index, vectors):
            ivf = faiss.try_extract_index_ivf(index)
            if ivf is not None:
                ivf.make_direct_map()  # vectors_at by position without a raw copy
        else:
            raw = RawVectors.write(spill, vectors)
            files["raw"] = raw.file
        index, files["index"] = write_index(spill, index)
        if payload is not None:
            payload, files["payload"] = write_payload(spill, payload)
        segment = cls(keys, tags, index, raw, payload, sealed=True, files=files)
        segment.digest = segment_digest(files["index"].sha256(), npy_sha256(keys))
        return segment

    def sharing(self, dead: np.ndarray) -> SealedSegment:
        """A segment with this one's immutable parts (index, files, ids, payload) and its own
        dead mask: how a newer snapshot's copy of a held segment costs no memory again."""
        twin = SealedSegment(
            self.ids,
            self.tags,
            self.index,
            self.raw,
            self.payload,
            sealed=self.sealed,
            dead=dead,
            files=self.files,
        )
        twin._postings_cache = self._postings_cache
        twin.digest = self.digest
        return twin

    def _live_params(self, config: ShardsConfig, exhaustive: bool) -> faiss.SearchParameters:
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

    def index_in_memory(self) -> faiss.Index:
        """The index read from its spill file into memory (the mapped one is not copied)."""
        file = self.files.get("index")
        return self.index if file is None else faiss.read_index(str(file.path))

    def _params_changed(self) -> None:
        self._params.clear()

    def _postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._postings_cache is None:
            self._postings_cache = _postings(self.tags)
        return self._postings_cache


def _postings(tags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct tags, start of each in order, positions grouped by tag): tag postings."""
    order = np.argsort(tags, kind="stable").astype(np.int32)
    codes, counts = np.unique(tags[order], return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)])
    return codes, starts, order


def _empty_result(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((m, 0), dtype=np.float32), np.empty((m, 0), dtype=np.int64)
