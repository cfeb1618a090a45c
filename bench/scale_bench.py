"""Shard benchmark at scale: one shard replica's state filled with n pins, measured whole.

    python -m bench.scale_bench [--n 1000000] [--config ivf_pq] [--segment 1000000]
                                [--queries 200] [--repeats 3] [--out bench/results/scale-1m.json]

The pins stream into a ShardState in log batches of 10,000 (pin ids, titles, boards and
vectors, as the embeddings log carries them); sealed segments of `segment` vectors are built
in the background meanwhile. Measured in one run on one machine:
- upsert rate of apply_rows, and build time per 1M vectors of the sealed segments;
- bytes per vector: the FAISS indexes (their files), the bookkeeping beside them, and on disk
  the raw vectors and payloads; anonymous and file-backed memory of a fresh process that
  loads the snapshot (what a replica holds);
- recall@10 against exact search over every live vector (ShardIndex.exact_search, streamed
  from the raw vectors on disk), and its time;
- QPS of ShardIndex.search, one query per call and in batches of 100, as a ratio to the very
  same FAISS indexes searched directly with the same parameters (IndexRefineFlat with the
  same k_factor where the config reranks) and merged, alternating runs, medians;
- a snapshot swap: a fresh process serves the snapshot, then loads a newer one with 5 % more
  pins sharing the segments both hold: its peak and final anonymous growth.
Data: the shard benchmark's two-level Gaussian mixture, generated chunk by chunk, never held
whole in memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.run_header import machine, run_header
from bench.shards_bench import (
    SUBCLUSTERS,
    TOPICS,
    K,
    _unit,
    compare_qps,
    ivf_params,
    recall,
    resident_bytes,
    swap_bytes,
    with_rerank,
)
from conf.config import ShardsConfig
from shards import ShardState
from shards.memory import bytes_per_vector, shipped_configs
from shards.top_k import merge_top_k
from streams.embeddings_log import log_rows

CHUNK = 10_000
BATCHED = 100


@dataclasses.dataclass
class Stream:
    """Chunks of the mixture: fixed centers, a fresh seeded draw per chunk."""

    dim: int
    seed: int

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        topics = _unit(rng.standard_normal((TOPICS, self.dim)))
        offsets = 0.3 * _unit(rng.standard_normal((TOPICS, SUBCLUSTERS, self.dim)))
        self.centers = _unit(topics[:, None, :] + offsets).reshape(-1, self.dim)
        self.rotation, _ = np.linalg.qr(rng.standard_normal((self.dim, self.dim)))
        spectrum = np.arange(1, self.dim + 1) ** -0.5
        self.spectrum = spectrum * 0.6 / np.sqrt((spectrum**2).sum())

    def chunk(self, number: int, size: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, number))
        labels = rng.integers(len(self.centers), size=size)
        noise = (rng.standard_normal((size, self.dim)) * self.spectrum) @ self.rotation.T
        return _unit(self.centers[labels] + noise).astype(np.float32)


def fill(state: ShardState, stream: Stream, n: int, first_chunk: int, prefix: str) -> float:
    """Apply n pins in log batches; return the seconds apply_rows took."""
    took = 0.0
    for number, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        rows = range(start, start + size)
        batch = log_rows(
            pin_ids=[f"{prefix}-{row}" for row in rows],
            ops=["upsert"] * size,
            versions=pa.array(rows, pa.int64()),
            generation="bench",
            vectors=stream.chunk(first_chunk + number, size),
            titles=[f"title {row}" for row in rows],
            boards=[f"board {row % 1000}" for row in rows],
            event_times=np.zeros(size, dtype=np.int64),
            dim=stream.dim,
        )
        began = time.perf_counter()
        state.apply_rows(batch)
        took += time.perf_counter() - began
    return took


def direct_search(state: ShardState, config: ShardsConfig) -> Any:
    """The shard's sealed FAISS indexes searched directly, same parameters, merged by score."""
    segments = [s for s in state.index._segments if s.sealed]  # the benchmark looks inside
    searches: list[tuple[Any, Any, np.ndarray]] = []
    for segment in segments:
        params = ivf_params(segment.index, config)
        if segment.raw is not None and config.rerank_factor > 0:
            refined, outer = with_rerank(
                segment.index, params, config.rerank_factor, segment.raw.array
            )
            searches.append((refined, outer, segment.ids))
        else:
            searches.append((segment.index, params, segment.ids))

    def search(queries: np.ndarray) -> np.ndarray:
        parts = []
        for index, params, ids in searches:
            scores, labels = index.search(queries, K, params=params)
            parts.append((scores, np.where(labels >= 0, ids[np.maximum(labels, 0)], -1)))
        return merge_top_k(parts, len(queries), K, config.metric)[1]

    return search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--config", default="ivf_pq", help="a shipped config name")
    parser.add_argument("--segment", type=int, default=1_000_000, help="growing_limit")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/scale-1m.json"))
    parser.add_argument(
        "--skip-swap", action="store_true", help="no second snapshot and swap (saves disk)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    info = machine()
    config = dataclasses.replace(
        shipped_configs(args.dim)[args.config],
        growing_limit=args.segment,
        compact_dead_fraction=1.0,
    )
    print(f"{args.n} x {args.dim}, {config.sealed_index}, segments of {args.segment}", flush=True)
    stream = Stream(args.dim, args.seed)
    with tempfile.TemporaryDirectory(prefix="scale-bench-", dir=os.environ.get("TMPDIR")) as work:
        state = ShardState(config)
        apply_s = fill(state, stream, args.n, 0, "pin")
        began = time.perf_counter()
        state.index.seal()
        state.index.wait_idle()
        seal_wait_s = time.perf_counter() - began
        stats = state.index.stats()
        print(f"filled: apply {apply_s:.1f}s, seal wait {seal_wait_s:.1f}s", flush=True)
        queries = stream.chunk(10**6, args.queries)
        began = time.perf_counter()
        _, truth = state.index.exact_search(queries, K)
        exact_s = time.perf_counter() - began
        direct = direct_search(state, config)

        def ours(batch: np.ndarray) -> np.ndarray:
            return state.index.search(batch, K)[1]

        found = ours(queries)
        result: dict[str, Any] = {
            "config": dataclasses.asdict(config),
            "vectors": args.n,
            "segments": len(stats["segments"]),
            "upsert_vectors_per_s": args.n / apply_s,
            "build_s_per_1m": stats["build_s"] * 1_000_000 / args.n,
            "seal_wait_after_last_upsert_s": seal_wait_s,
            "recall_at_10": {
                "shard_index": recall(found, truth),
                "faiss_direct": recall(direct(queries), truth),
            },
            "exact_search_s_per_query": exact_s / args.queries,
            "qps_one_query_per_call": compare_qps(ours, direct, queries, 1, args.repeats),
            "qps_batched": compare_qps(ours, direct, queries, BATCHED, args.repeats),
            "bytes_per_vector": bytes_per_vector(state.index),
            "key_table_bytes_per_id": stats["key_table_bytes"] / max(stats["ids"], 1),
        }
        print("measuring a loaded replica and a swap", flush=True)
        first = state.save(str(Path(work) / "snapshots"), {0: 1})
        swap = None
        if not args.skip_swap:
            fill(state, stream, args.n // 20, 10**5, "new-pin")
            state.index.seal()
            newer = state.save(str(Path(work) / "snapshots"), {0: 2})
        state.index.close()
        loaded = resident_bytes(first, "ShardState")
        if not args.skip_swap:
            swap = swap_bytes(first, newer)
    sizes = result["bytes_per_vector"]
    anon = None if loaded is None else loaded["anon"] / args.n
    beyond = None if anon is None else anon - sizes["faiss_index_in_anonymous_memory"]
    result["resident_bytes_per_vector"] = {
        "anon": anon,
        "anon_beyond_faiss_index": beyond,
        "file_mapped": None if loaded is None else loaded["file"] / args.n,
        # RAM a replica needs: its anonymous memory plus the mapped FAISS pages searches keep
        # hot; raw vectors and payloads may stay on disk.
        "replica": None
        if anon is None
        else anon + sizes["faiss_index"] - sizes["faiss_index_in_anonymous_memory"],
    }
    result["swap_bytes_per_vector"] = {k: v / args.n for k, v in (swap or {}).items()}
    info["load_average_at_end"] = os.getloadavg()
    output = {
        **run_header("scale", argv),
        "machine": info,
        "result": result,
        "goals": {
            "anon_bytes_beyond_faiss_le_64": beyond is not None and beyond <= 64,
            "recall_at_10_ge_0.95": result["recall_at_10"]["shard_index"] >= 0.95,
        },
        "wall_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2))
    print(json.dumps(_summary(result), indent=1))
    return 0


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "recall_at_10": result["recall_at_10"],
        "qps_ratio_single": round(result["qps_one_query_per_call"]["ratio"], 3),
        "qps_ratio_batched": round(result["qps_batched"]["ratio"], 3),
        "upsert_vectors_per_s": round(result["upsert_vectors_per_s"]),
        "build_s_per_1m": round(result["build_s_per_1m"], 1),
        "bytes_per_vector": result["bytes_per_vector"],
        "resident": result["resident_bytes_per_vector"],
        "swap": result["swap_bytes_per_vector"],
    }


if __name__ == "__main__":
    sys.exit(main())
