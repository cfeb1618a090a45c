"""`pinstream router train`: the centroid router of an index generation (shards/router.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from conf.config import PinstreamConfig
from conf.errors import PinstreamError

DEFAULT_SAMPLE = 100_000


def add_router_parsers(commands: Any) -> None:
    """Add the router command to the `pinstream` parser."""
    router = commands.add_parser("router", help="the centroid router of centroid-routed shards")
    actions = router.add_subparsers(dest="action", required=True)
    train = actions.add_parser(
        "train",
        help="train the coarse centroids and their shards from a sample of the live vectors "
        "(the current generation's newest snapshots) or a vectors file",
    )
    train.add_argument(
        "--generation",
        default=None,
        help="the generation it routes (default: the config's); a new one, e.g. for "
        "`pinstream backfill --generation G`, takes the current one's vectors (same model)",
    )
    train.add_argument(
        "--vectors",
        type=Path,
        default=None,
        help=".npy float matrix [n, shards.dim] to train on instead of the snapshots",
    )
    train.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help="vectors trained on")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--replace",
        action="store_true",
        help="replace the generation's router (its pins stay where the old one put them: "
        "only for a generation rebuilt from scratch)",
    )
    train.set_defaults(run=run_router_train)


def run_router_train(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    from shards.router import train_router
    from shards.router_store import has_router, sample_snapshots, save_router

    if args.sample < 1:
        raise PinstreamError("--sample must be >= 1")
    target = cfg
    if args.generation not in (None, cfg.model.generation):
        target = cfg.for_generation(args.generation, cfg.model.name)
    root = target.router_root()
    if has_router(root) and not args.replace:
        raise PinstreamError(
            f"generation {target.model.generation} has a router under {root} already; its pins "
            "were placed by it. Pass --replace only for a generation rebuilt from scratch"
        )
    if args.vectors is None:
        sample, source = sample_snapshots(cfg, args.sample, args.seed), "snapshots"
    else:
        sample, source = _vectors_file(args.vectors, args.sample, args.seed), str(args.vectors)
    shards = cfg.shards
    if sample.shape[1] != shards.dim:
        raise PinstreamError(f"the sample has dim {sample.shape[1]}, shards.dim is {shards.dim}")
    print(
        f"training {shards.route_groups} groups over {len(sample)} vectors from {source} "
        f"for {shards.count} shards ...",
        flush=True,
    )
    try:
        router = train_router(
            sample, shards.count, shards.route_groups, shards.metric, args.seed, shards.route_nprobe
        )
    except ValueError as exc:
        raise PinstreamError(f"cannot train the router: {exc}") from exc
    loads = router.shard_loads(sample)
    uri = save_router(
        root,
        router,
        {
            "seed": args.seed,
            "sample": len(sample),
            "source": source,
            "model": cfg.model.name,
            "sample_shard_loads": loads.tolist(),
        },
    )
    print(f"router of generation {target.model.generation}: {uri}")
    balance = loads.max() / loads.mean()
    print(f"  sample vectors per shard: {loads.tolist()} (max / mean {balance:.3f})")
    return 0


def _vectors_file(path: Path, n: int, seed: int) -> np.ndarray:
    try:
        vectors = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise PinstreamError(f"cannot read vectors from {path}: {exc}") from exc
    if vectors.ndim != 2:
        raise PinstreamError(f"{path} holds an array of shape {vectors.shape}, not [n, dim]")
    if len(vectors) > n:
        rows = np.sort(np.random.default_rng(seed).choice(len(vectors), n, replace=False))
        vectors = vectors[rows]
    return np.asarray(vectors, dtype=np.float32)
