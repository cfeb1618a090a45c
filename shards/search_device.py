"""Where a shard searches its sealed segments: on the CPU, or on a GPU through faiss-gpu.

The device is chosen once per shard index (ShardsConfig.search_device: auto | cpu | cuda;
`cuda` without a GPU is refused when the index is built) and carries the compute function
that copies a sealed segment's FAISS index to it (faiss.index_cpu_to_gpu on a GPU),
faiss-contrib style. The rest, one batched FAISS call per segment for all the queries of a
call, dropping dead positions, reranking, merging the segments' results, is the one code
path of shards/segments.py and shards/shard_index.py: unit tests run it on the CPU with an
in-memory copy as the "device" and compare it with the CPU search.

What runs on the device: unfiltered searches of sealed segments whose index type faiss-gpu
implements (Flat, IVF-Flat, IVF-SQ, IVF-PQ and pre-transforms such as OPQ around them; CAGRA
where the wheel has cuVS). GPU indexes take no IDSelector, hence:

- dead positions (replaced or deleted pins) are dropped after the search: the device is asked
  for `fetch + n_dead` results, which always leaves the `fetch` best live ones of the probed
  lists, what the CPU finds with its dead-position selector; where that is over the device's
  k limit (GPU_MAX_K), the segment is searched on the CPU until compaction drops its dead;
- filtered searches (tags, excluded pins) run on the CPU with their IDSelectorBitmap;
- an index the device does not implement (HNSW, fast-scan PQ, ...) stays on the CPU.

Sealed indexes are memory-mapped from spill files (IO_FLAG_MMAP_IFC); a copy is made from the
index read into memory, and the device copy lives as long as the CPU index it was made from.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Literal

import faiss
import numpy as np

from shards.exceptions import ShardError

SearchDeviceName = Literal["auto", "cpu", "cuda"]
SEARCH_DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
# faiss-gpu's largest k and nprobe (GPU_MAX_SELECTION_K in faiss/gpu/utils/DeviceDefs.cuh).
GPU_MAX_K = 2048

log = logging.getLogger(__name__)

# Copies a CPU index (in memory) to the device: the compute function a device is made of.
ToDevice = Callable[[faiss.Index], faiss.Index]


class SearchDevice:
    """Where sealed segments are searched: the CPU (to_device None) or a device that
    to_device copies indexes to; max_k bounds the k and nprobe of one device search."""

    def __init__(self, name: str, to_device: ToDevice | None = None, max_k: int = GPU_MAX_K):
        self.name = name
        self.max_k = max_k
        self.searches = 0  # device searches run (for stats and tests)
        self._to_device = to_device
        self._lock = threading.Lock()  # GPU resources are not thread-safe: one call at a time
        # Device copy (None: stays on the CPU) by the CPU index it was made from.
        self._copies: weakref.WeakKeyDictionary[Any, faiss.Index | None] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def on_cpu(self) -> bool:
        """True when every search runs on the CPU."""
        return self._to_device is None

    def copy_of(
        self, index: faiss.Index, in_memory: Callable[[], faiss.Index]
    ) -> faiss.Index | None:
        """The device copy of index, made from in_memory() on first use; None when the device
        cannot hold it (the segment is then searched on the CPU)."""
        if self._to_device is None:
            return None
        with self._lock:
            if index in self._copies:
                return self._copies[index]
            try:
                copy: faiss.Index | None = self._to_device(in_memory())
            except RuntimeError as exc:  # type not implemented on GPU, or out of GPU memory
                log.warning("a %s index stays on the CPU: %s", _kind(index), _first_line(exc))
                copy = None
            self._copies[index] = copy
            return copy

    def holds(self, index: faiss.Index) -> bool:
        """True when a device copy of index exists."""
        with self._lock:
            return self._copies.get(index) is not None

    def search(
        self,
        copy: faiss.Index,
        queries: np.ndarray,
        k: int,
        params: faiss.SearchParameters | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One batched search of a device copy: (scores, labels) of shape (len(queries), k)."""
        if k > self.max_k:
            raise ValueError(f"k={k} is over the device's limit {self.max_k}")
        with self._lock:
            self.searches += 1
            return copy.search(queries, k, params=params)


def drop_dead(
    scores: np.ndarray, labels: np.ndarray, dead: np.ndarray, keep: int, pad: np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """The first `keep` results of each row whose label is live (not -1, not dead), in order,
    padded with label -1 and score pad."""
    live = labels >= 0
    live[live] = ~dead[labels[live]]
    order = np.argsort(~live, axis=1, kind="stable")[:, :keep]
    kept = np.take_along_axis(live, order, axis=1)
    scores = np.where(kept, np.take_along_axis(scores, order, axis=1), pad).astype(np.float32)
    labels = np.where(kept, np.take_along_axis(labels, order, axis=1), -1)
    return scores, labels


def gpu_count() -> int:
    """GPUs faiss can use: 0 with faiss-cpu."""
    return int(faiss.get_num_gpus())


def search_device(requested: str) -> SearchDevice:
    """The device of a search_device setting: auto = cuda when faiss sees a GPU, else cpu."""
    if requested not in SEARCH_DEVICES:
        raise ValueError(
            f"search_device must be one of {'|'.join(SEARCH_DEVICES)}, got {requested!r}"
        )
    gpus = gpu_count()
    if requested == "cpu" or (requested == "auto" and gpus == 0):
        return SearchDevice("cpu")
    if gpus == 0:
        raise ShardError(
            "search_device 'cuda' requested but faiss sees no GPU (faiss-cpu installed, or no "
            "CUDA device): install pinstream[gpu] on a GPU machine, or set search_device: auto"
        )
    return SearchDevice("cuda", gpu_copier())


def gpu_copier(device: int = 0) -> ToDevice:
    """The compute function that copies an index to GPU `device` (one resources object per
    process), storing float32 as the CPU index does so scores match it."""
    resources = gpu_resources()
    options = faiss.GpuClonerOptions()
    options.useFloat16 = False

    def to_gpu(index: faiss.Index) -> faiss.Index:
        return faiss.index_cpu_to_gpu(resources, device, index, options)

    return to_gpu


_resources: list[Any] = []
_resources_lock = threading.Lock()


def gpu_resources() -> Any:
    """The process's faiss StandardGpuResources (its temporary memory is shared by every copy)."""
    with _resources_lock:
        if not _resources:
            _resources.append(faiss.StandardGpuResources())
        return _resources[0]


def _kind(index: faiss.Index) -> str:
    return type(faiss.downcast_index(index)).__name__


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
