"""The sealed index configs pinstream ships, and what each costs per stored vector."""

import faiss

from conf.config import Metric, ShardsConfig
from shards.shard_index import ShardIndex

# Bytes a sealed segment keeps per vector besides its FAISS index: the int64 id at each
# position and the bool dead mask.
SEGMENT_BOOKKEEPING_BYTES = 8 + 1


def shipped_configs(dim: int, metric: Metric = "ip") -> dict[str, ShardsConfig]:
    """Exact "Flat", the default IVF-Flat, and IVF-PQ (4-bit fast-scan, 2 bits per dimension).

    IVF-PQ fetches 10 candidates per result and reranks them exactly from raw vectors kept on
    local disk; in memory its index is about 1/16 of float32.
    """
    if dim % 2:
        raise ValueError(f"the shipped IVF-PQ config needs an even dim, got {dim}")
    return {
        "flat": ShardsConfig(dim=dim, metric=metric, sealed_index="Flat"),
        "ivf_flat": ShardsConfig(dim=dim, metric=metric),
        "ivf_pq": ShardsConfig(
            dim=dim, metric=metric, sealed_index=f"IVF256,PQ{dim // 2}x4fs", rerank_factor=10
        ),
    }


def bytes_per_vector(index: ShardIndex) -> dict[str, float]:
    """Per vector stored in sealed segments: memory of the FAISS indexes and bookkeeping,
    local disk for raw vectors of lossy indexes, and flat float32 for comparison.

    The FAISS size is the serialized size (what the index holds in memory, give or take
    allocator slack). Per-id versions and the id -> segment map are per live id whatever the
    config, so they are left out.
    """
    image = index.image()
    sealed = [segment for segment in image.segments if segment.sealed]
    stored = sum(len(segment.ids) for segment in sealed)
    if stored == 0:
        raise ValueError("no sealed segment to measure: seal() first")
    index_bytes = sum(faiss.serialize_index(segment.index).size for segment in sealed)
    raw_bytes = sum(segment.raw.array.nbytes for segment in sealed if segment.raw is not None)
    memory = index_bytes / stored + SEGMENT_BOOKKEEPING_BYTES
    flat = 4.0 * index.config.dim
    return {
        "faiss_index": index_bytes / stored,
        "memory": memory,
        "disk_raw": raw_bytes / stored,
        "flat_float32": flat,
        "memory_vs_flat": flat / memory,
    }
