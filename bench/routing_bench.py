"""Routing benchmark: hash-sharded against centroid-routed shards on the same data.

    python -m bench.routing_bench [--n 200000] [--dim 384] [--queries 1000] [--shards 8]
                                  [--groups 256] [--sample 100000] [--nprobes 1,2,4,8,16,32]
                                  [--mixtures 64x8,8x64]
                                  [--quick] [--out bench/results/routing.json]

Not a timing benchmark: it counts. The same corpus is split into `shards` ShardIndex shards
(the project's index, default sealed config `IVF256,Flat` at nprobe 32, sealed) twice: by a
hash of the pin id (every query asks every shard), and by a centroid router
(shards/router.py) trained on a sample of the corpus (a query asks the shards owning its
`route_nprobe` nearest groups). Per mode and route_nprobe: recall@10 of the merged answer
against exact search over the whole corpus, the routing recall (the share of the true top 10
that lives on a shard asked, the ceiling routing leaves), and the shards touched per query
(mean, p99). `figures.routed_shards_touched_fraction` is what the capacity planner reads.
Data: the shard benchmark's seeded two-level Gaussian mixture (bench/shards_bench.py),
normalized, queries fresh draws from it, once with 64 topics x 8 sub-clusters (topics do not
line up with the shards: the primary figures) and once with its own 8 x 64 (with 8 shards,
a topic fits one shard: the easy case). Not real MiniLM embeddings of the synthetic
pins: embedding 200k pins on this machine's CPUs takes longer than the session allows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.run_header import machine, run_header
from bench.shards_bench import Data, K, make_data, recall, write_results
from conf.config import ShardsConfig
from shards import ShardIndex
from shards.router import CentroidRouter, train_router
from shards.top_k import merge_top_k, worst_score
from streams.routing import shard_of

DEFAULT_NPROBES = (1, 2, 4, 8, 16, 32)
# Topics x sub-clusters: 64 topics do not line up with 8 shards (the primary figures), the
# shard benchmark's 8 do.
DEFAULT_MIXTURES = ((64, 8), (8, 64))


def per_shard_answers(
    data: Data, owners: np.ndarray, shards: int, config: ShardsConfig
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every shard's top-K (scores, corpus rows) for every query, each shard sealed."""
    answers = []
    for shard in range(shards):
        rows = np.flatnonzero(owners == shard)
        index = ShardIndex(config)
        try:
            index.upsert(rows, data.vectors[rows])
            index.seal()
            answers.append(index.search(data.queries, K))
        finally:
            index.close()
        print(f"  shard {shard}: {len(rows)} vectors", flush=True)
    return answers


def routed_result(
    data: Data,
    answers: list[tuple[np.ndarray, np.ndarray]],
    asked: list[np.ndarray],
    owners: np.ndarray,
    metric: str,
) -> dict[str, Any]:
    """recall@10 of the merged answers of the shards asked, routing recall, shards touched."""
    m = len(data.queries)
    mask = np.zeros((m, len(answers)), dtype=bool)
    for query, shards in enumerate(asked):
        mask[query, shards] = True
    parts = []
    for shard, (scores, ids) in enumerate(answers):
        kept = mask[:, shard : shard + 1]
        parts.append((np.where(kept, scores, worst_score(metric)), np.where(kept, ids, -1)))
    _, found = merge_top_k(parts, m, K, metric)
    truth_asked = np.take_along_axis(mask, owners[data.truth], axis=1)
    touched = mask.sum(axis=1)
    return {
        "recall_at_10": recall(found, data.truth),
        "routing_recall_at_10": float(truth_asked.mean()),
        "shards_touched_mean": float(touched.mean()),
        "shards_touched_p99": float(np.percentile(touched, 99)),
        "shards_touched_fraction": float(touched.mean() / len(answers)),
    }


def balance(owners: np.ndarray, shards: int) -> dict[str, Any]:
    sizes = np.bincount(owners, minlength=shards)
    return {"sizes": sizes.tolist(), "max_over_mean": float(sizes.max() / sizes.mean())}


def compare(args: argparse.Namespace, topics: int, subclusters: int) -> dict[str, Any]:
    """Hash and centroid routing over one mixture: the same corpus, queries and shard config."""
    config = ShardsConfig(dim=args.dim)
    default_nprobe = ShardsConfig().route_nprobe
    print(f"data: {args.n} x {args.dim}, {topics} x {subclusters} clusters", flush=True)
    data = make_data(args.n, args.dim, args.queries, args.seed, topics, subclusters)

    print(f"hash sharding over {args.shards} shards", flush=True)
    hashed = np.array([shard_of(f"pin-{row}", args.shards) for row in range(args.n)])
    every = [np.arange(args.shards)] * args.queries
    hash_answers = per_shard_answers(data, hashed, args.shards, config)
    hash_result = {
        **routed_result(data, hash_answers, every, hashed, config.metric),
        "balance": balance(hashed, args.shards),
    }
    del hash_answers

    rng = np.random.default_rng(args.seed)
    sample = data.vectors[np.sort(rng.choice(args.n, min(args.sample, args.n), replace=False))]
    print(f"router: {args.groups} groups over a sample of {len(sample)}", flush=True)
    router: CentroidRouter = train_router(
        sample, args.shards, args.groups, config.metric, args.seed, default_nprobe
    )
    owners = router.owner_shards(data.vectors)
    routed_answers = per_shard_answers(data, owners, args.shards, config)
    sweep = []
    for nprobe in sorted({int(p) for p in args.nprobes.split(",")}):
        result = routed_result(
            data, routed_answers, router.shards_for(data.queries, nprobe), owners, config.metric
        )
        sweep.append({"route_nprobe": nprobe, **result})
        print(f"  route_nprobe {nprobe:3d}: {json.dumps(result)}", flush=True)
    print(f"  hash: {json.dumps({k: v for k, v in hash_result.items() if k != 'balance'})}")
    return {
        "data": {"topics": topics, "subclusters": subclusters},
        "hash": hash_result,
        "centroid": {
            "groups": args.groups,
            "sample": len(sample),
            "balance": balance(owners, args.shards),
            "sweep": sweep,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--groups", type=int, default=256)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument(
        "--nprobes", default=",".join(map(str, DEFAULT_NPROBES)), help="route_nprobe sweep"
    )
    parser.add_argument(
        "--mixtures",
        default=",".join(f"{t}x{c}" for t, c in DEFAULT_MIXTURES),
        help="topics x sub-clusters of each data set (the first is the figures' primary)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20k x 128, for a smoke run")
    parser.add_argument("--out", type=Path, default=Path("bench/results/routing.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.dim, args.queries, args.sample = 20_000, 128, 300, 10_000
    mixtures = [tuple(int(x) for x in m.split("x")) for m in args.mixtures.split(",")]
    started = time.perf_counter()
    config = ShardsConfig(dim=args.dim)
    default_nprobe = ShardsConfig().route_nprobe
    info = machine()
    runs = [compare(args, topics, subclusters) for topics, subclusters in mixtures]
    figures = []
    for run in runs:
        conditions = {
            "shards": args.shards,
            "groups": args.groups,
            "vectors": args.n,
            "dim": args.dim,
            "index": config.sealed_index,
            "nprobe": config.nprobe,
            "data": "gaussian mixture {topics} topics x {subclusters}".format(**run["data"]),
        }
        sweep = run["centroid"]["sweep"]
        for point in sorted(sweep, key=lambda point: point["route_nprobe"] != default_nprobe):
            figures.append(
                {
                    "value": point["shards_touched_fraction"],
                    "unit": "fraction",
                    "conditions": {
                        **conditions,
                        "route_nprobe": point["route_nprobe"],
                        "recall_at_10": point["recall_at_10"],
                        "hash_recall_at_10": run["hash"]["recall_at_10"],
                    },
                }
            )
    output = {
        **run_header("routing", argv),
        "machine": info,
        "data": {
            "kind": "two-level Gaussian mixtures (bench/shards_bench.py mixture), normalized",
            "vectors": args.n,
            "dim": args.dim,
            "queries": args.queries,
            "seed": args.seed,
        },
        "shard_config": dataclasses.asdict(config),
        "runs": runs,
        "figures": {"routed_shards_touched_fraction": figures},
        "notes": [
            "recall against exact search (IndexFlatIP) over the whole corpus; each shard's "
            "answer is its sealed IVF index's, so hash recall is the per-shard index's recall "
            "and centroid recall adds what routing leaves out",
            "routing_recall_at_10: share of the true top 10 owned by a shard the query asks",
            "shards touched: distinct shards owning the query's route_nprobe nearest groups; "
            "hash sharding touches every shard",
            "the router is trained on a sample of the corpus and assigns the whole corpus",
            "8 topics on 8 shards is the easy case (a topic fits one shard); 64 topics is not",
        ],
        "wall_s": time.perf_counter() - started,
    }
    write_results(args.out, output)
    print(f"wrote {args.out} in {output['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
