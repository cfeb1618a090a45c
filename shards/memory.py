"""The sealed index configs pinstream ships, and what each costs per stored vector."""

import os

import faiss

from conf.config import Metric, ShardsConfig
from shards.shard_index import ShardIndex

# Resident bytes per stored vector besides its FAISS index: the key table row (id, version,
# owner: int64; slot, position: int32) and the segment's arrays by position (int64 id, int32
# tag, bool dead mask, int32 tag posting).
KEY_ROW_BYTES = 8 + 8 + 8 + 4 + 4
SEGMENT_BOOKKEEPING_BYTES = 8 + 4 + 1 + 4


def shipped_configs(dim: int, metric: Metric = "ip") -> dict[str, ShardsConfig]:
    """Exact "Flat", the default IVF-Flat, and IVF-PQ, the compressed config for billions:
    4-bit fast-scan PQ on IVF residuals ("fsr"; plain "fs" encodes raw vectors and loses
    recall on clustered data), 1 bit per dimension.

    IVF-PQ probes 64 of 256 lists, fetches 100 candidates per result and reranks them exactly
    from raw vectors kept on local disk; in memory its index is about 1/20 of float32.
    """
    if dim % 4:
        raise ValueError(f"the shipped IVF-PQ config needs dim divisible by 4, got {dim}")
    return {
        "flat": ShardsConfig(dim=dim, metric=metric, sealed_index="Flat"),
        "ivf_flat": ShardsConfig(dim=dim, metric=metric),
        "ivf_pq": ShardsConfig(
            dim=dim,
            metric=metric,
            sealed_index=f"IVF256,PQ{dim // 4}x4fsr",
            nprobe=64,
            rerank_factor=100,
        ),
    }


def stays_in_anonymous_memory(index: faiss.Index) -> bool:
    """Whether a sealed index's codes are read into anonymous memory, not mapped: fast-scan
    IVF lists are repacked in blocks, which FAISS's IO_FLAG_MMAP_IFC does not map."""
    ivf = faiss.try_extract_index_ivf(index)
    return ivf is not None and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFastScan)


def bytes_per_vector(index: ShardIndex) -> dict[str, float]:
    """Per vector stored in sealed segments: the FAISS index (its file: codes, ids, IVF direct
    map), the resident bookkeeping beside it (key table, segment arrays), on local disk the raw
    vectors of lossy indexes and the payload, and flat float32 for comparison.

    Sealed FAISS indexes are mapped from their spill files (shards/spill.py), so their size
    is page cache that the kernel may evict, not anonymous memory, except where FAISS cannot
    map them (stays_in_anonymous_memory).
    """
    image = index.image()
    sealed = [part.segment for part in image.segments if part.segment.sealed]
    stored = sum(segment.n for segment in sealed)
    if stored == 0:
        raise ValueError("no sealed segment to measure: seal() first")
    index_bytes = sum(os.path.getsize(segment.files["index"].path) for segment in sealed)
    unmapped_bytes = sum(
        os.path.getsize(segment.files["index"].path)
        for segment in sealed
        if stays_in_anonymous_memory(segment.index)
    )
    raw_bytes = sum(segment.raw.array.nbytes for segment in sealed if segment.raw is not None)
    payload_bytes = sum(
        os.path.getsize(segment.files["payload"].path)
        for segment in sealed
        if "payload" in segment.files
    )
    bookkeeping = KEY_ROW_BYTES + SEGMENT_BOOKKEEPING_BYTES
    flat = 4.0 * index.config.dim
    return {
        "faiss_index": index_bytes / stored,
        "faiss_index_in_anonymous_memory": unmapped_bytes / stored,
        "bookkeeping": float(bookkeeping),
        "memory": index_bytes / stored + bookkeeping,
        "disk_raw": raw_bytes / stored,
        "disk_payload": payload_bytes / stored,
        "flat_float32": flat,
        "memory_vs_flat": flat / (index_bytes / stored + bookkeeping),
    }
