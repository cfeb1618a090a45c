"""A loaded shard replica against the same FAISS index searched directly, in one run.

    python -m bench.shard_load_bench [--n 200000] [--concurrency 1,8,32,64] [--seconds 4]
                                     [--repeats 3] [--out bench/results/shard_load.json]

One shard of `n` clustered 384-d vectors in one sealed segment of the default index
(`IVF256,Flat`, nprobe 32) is saved as a snapshot; a real `ShardReplica` deployment loads it
on real Serve. This process then keeps `concurrency` single-query searches in flight through
the deployment handle (closed loop) and reads the batch sizes the replica formed (its
`stats()`), in two ways (`calls`): `single`, each search its own call, and `fan_out`, the
searches that are ready together sent as one `search_batch` call, as an ingress replica sends
them (serve/fan_out_batcher.py). The baselines, searched here on one FAISS thread as the
replica searches:
- `faiss_direct`: the segment's FAISS index itself, in batches of the size the replica
  formed at that level (rounded), the issue's yardstick;
- `faiss_direct_one_query`: the same index, one query per call.
Medians over `repeats`. The load generator runs in this process, on the same cores: each
handle call costs it CPU, so the replica's share of the machine shrinks as the rate grows
(`replica_search_share` says how much of the time the replica spent searching). A larger
shard (`--n`) puts more of each query's cost in FAISS, as production shards do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import ray
from ray import serve

from bench.run_header import machine, run_header
from bench.shards_bench import K, bench_rows, direct_index, make_data
from conf.config import PinstreamConfig, ServeConfig, load_config
from jobs.stack import create_topics
from serve.data_path import use_serve_environment
from serve.fan_out_batcher import FanOutBatcher
from serve.shard_query import ShardQuery
from serve.shard_replica import ShardReplica
from shards.shard_state import ShardState
from streams.local_broker import LocalBroker, free_loopback_port

QUERIES = 2000
FAISS_QUERIES = 400  # per baseline run: enough batches of any size the replica forms


def shard_config(bootstrap: str, n: int, storage: str) -> PinstreamConfig:
    """One shard of the embedded default, all `n` pins in one sealed segment."""
    cfg = (
        load_config()
        .with_values(
            {
                "broker.bootstrap": bootstrap,
                "shards.count": 1,
                "shards.growing_limit": n,
                "storage.root": storage,
            }
        )
        .namespaced(f"load-{uuid.uuid4().hex[:8]}")
    )
    create_topics(cfg)
    return cfg


def saved_shard(cfg: PinstreamConfig, vectors: np.ndarray, data: Any) -> ShardState:
    """The shard's state, sealed and saved as the snapshot its replica starts from."""
    state = ShardState(cfg.shards)
    for start in range(0, len(vectors), 10_000):
        state.apply_rows(bench_rows(data, np.arange(start, min(start + 10_000, len(vectors)))))
    state.index.seal()
    state.save(cfg.snapshot_root(0), log_offsets={0: 0})
    return state


CALLS = ("single", "fan_out")  # each search its own call; or as the ingress sends them


async def closed_loop(
    handle: Any,
    queries: np.ndarray,
    concurrency: int,
    seconds: float,
    calls: str = "single",
    settings: ServeConfig | None = None,
) -> tuple[float, float, int]:
    """`concurrency` callers, each with one search in flight, for `seconds`: QPS, the seconds
    it took (the last calls end after `seconds`), errors. With calls="fan_out" the searches
    ready together go as one `search_batch`, as the ingress sends them with `settings`' fan-out
    batching (the embedded default's when None)."""

    async def search_batch(batch: list[ShardQuery]) -> list[Any]:
        found: list[Any] = await handle.search_batch.remote(batch)
        return found

    fan_out = settings or ServeConfig()
    together = FanOutBatcher(
        search_batch, fan_out.fan_out_max_batch_size, fan_out.fan_out_max_wait_s
    )
    done, errors = [0], [0]
    stop = time.perf_counter() + seconds

    async def search(query: ShardQuery) -> Any:
        if calls == "fan_out":
            return await together.submit(query)
        return await handle.search.remote(query)

    async def caller(slot: int) -> None:
        i = slot
        while time.perf_counter() < stop:
            try:
                await search(ShardQuery(queries[i % len(queries)], K))
                done[0] += 1
            except Exception:
                errors[0] += 1
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(caller(s) for s in range(concurrency)))
    elapsed = time.perf_counter() - started
    return done[0] / elapsed, elapsed, errors[0]


def faiss_qps(index: Any, params: Any, queries: np.ndarray, batch: int) -> float:
    """Queries/s of index.search over `queries` in batches of `batch`."""
    started = time.perf_counter()
    for first in range(0, len(queries), batch):
        index.search(queries[first : first + batch], K, params=params)
    return len(queries) / (time.perf_counter() - started)


def mean_batch(before: dict[str, int], after: dict[str, int]) -> float:
    """The mean size of the batches a replica searched between two of its stats."""
    grown = {int(size): count - before.get(size, 0) for size, count in after.items()}
    batches = sum(grown.values())
    return sum(size * count for size, count in grown.items()) / batches if batches else 0.0


def measure(
    handle: Any,
    data: Any,
    index: Any,
    params: Any,
    levels: list[int],
    seconds: float,
    repeats: int,
    settings: ServeConfig,
) -> dict[str, Any]:
    """Per way of calling and concurrency level: the replica's QPS and mean batch, and FAISS
    at that batch."""
    asyncio.run(closed_loop(handle, data.queries, 4, 1.0))  # warm-up
    return {
        calls: measure_calls(handle, data, index, params, levels, seconds, repeats, calls, settings)
        for calls in CALLS
    }


def measure_calls(
    handle: Any,
    data: Any,
    index: Any,
    params: Any,
    levels: list[int],
    seconds: float,
    repeats: int,
    calls: str,
    settings: ServeConfig,
) -> dict[str, Any]:
    """Per concurrency level, searches sent as `calls` says: the replica's QPS and mean
    batch, and FAISS at that batch."""
    result: dict[str, Any] = {}
    for concurrency in levels:
        runs = []
        for _ in range(repeats):
            before = handle.stats.remote().result()
            replica_qps, elapsed, errors = asyncio.run(
                closed_loop(handle, data.queries, concurrency, seconds, calls, settings)
            )
            if errors:
                raise RuntimeError(f"{errors} searches failed: the figures would mislead")
            after = handle.stats.remote().result()
            batch = mean_batch(before["batches"], after["batches"])
            busy = (after["search_seconds"] - before["search_seconds"]) / elapsed
            size = max(1, round(batch))
            direct = faiss_qps(index, params, data.queries[:FAISS_QUERIES], size)
            runs.append(
                {
                    "replica_qps": replica_qps,
                    "mean_batch": batch,
                    "replica_search_share": busy,
                    "faiss_direct": direct,
                }
            )
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        result[str(concurrency)] = {
            **median,
            "ratio": median["replica_qps"] / median["faiss_direct"],
            "runs": runs,
        }
        print(
            f"{calls} c={concurrency}: replica {median['replica_qps']:.0f}/s at batch "
            f"{median['mean_batch']:.1f} (searching {median['replica_search_share']:.0%} of the "
            f"time), FAISS {median['faiss_direct']:.0f}/s"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/shard_load.json"))
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    dim = load_config().shards.dim
    data = make_data(args.n, dim, QUERIES, seed=7)
    faiss.omp_set_num_threads(1)  # as in a shard replica (Ray sets OMP_NUM_THREADS=1)
    with LocalBroker() as broker, tempfile.TemporaryDirectory(prefix="pinstream-load-") as root:
        cfg = shard_config(broker.bootstrap, args.n, root)
        state = saved_shard(cfg, data.vectors, data)
        index, params, _ = direct_index(state.index, cfg.shards)
        one_query = faiss_qps(index, params, data.queries[:FAISS_QUERIES], 1)
        state.index.close()
        use_serve_environment(cfg.serve)  # as the stack starts its Ray
        ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": free_loopback_port()})
        try:
            settings = cfg.serve
            deployment = serve.deployment(
                name="shard-0",
                max_ongoing_requests=settings.shard_max_ongoing_requests,
                ray_actor_options={"num_cpus": settings.shard_num_cpus},
            )(ShardReplica)
            handle = serve.run(deployment.bind(cfg, 0), name="load", route_prefix=None)
            levels_result = measure(
                handle,
                data,
                index,
                params,
                levels,
                args.seconds,
                args.repeats,
                settings,
            )
        finally:
            serve.shutdown()
            ray.shutdown()
    best = {
        calls: max(levels.values(), key=lambda level: level["replica_qps"])
        for calls, levels in levels_result.items()
    }
    result = {
        **run_header("shard_load", argv),
        "machine": machine(),
        "load_average": os.getloadavg(),
        "conditions": {
            "vectors": args.n,
            "dim": dim,
            "index": cfg.shards.sealed_index,
            "nprobe": cfg.shards.nprobe,
            "k": K,
            "seconds_per_level": args.seconds,
            "repeats": args.repeats,
            "shard_max_batch_size": settings.shard_max_batch_size,
            "shard_batch_wait_s": settings.shard_batch_wait_s,
            "faiss_threads": 1,
        },
        "levels": levels_result,
        "faiss_direct_one_query_qps": one_query,
        "figures": {
            "loaded_replica_qps_vs_faiss_batched": [
                {
                    "value": level["ratio"],
                    "unit": "ratio",
                    "conditions": {
                        "vectors": args.n,
                        "index": cfg.shards.sealed_index,
                        "calls": calls,
                        "mean_batch": level["mean_batch"],
                    },
                }
                for calls, level in best.items()
            ],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({key: result[key] for key in ("figures", "load_average")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
