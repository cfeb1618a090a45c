"""Merging top-k candidate lists: the one way pinstream picks the best k of several.

A shard merges its segments' results with it, the ingress its shards' answers. Candidates
come as (m, n_i) score and id arrays, one list per source; the result is (m, k), best first,
stable among equal scores (an earlier list wins), padded with id -1 and the worst score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from conf.config import higher_is_better


def worst_score(metric: str) -> np.float32:
    """The score of padding: below any inner product, above any distance."""
    return np.float32(-np.inf if higher_is_better(metric) else np.inf)


def merge_top_k(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], m: int, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """The best k of (scores, ids) lists of m rows each; ids -1 mark empty slots."""
    pad = worst_score(metric)
    if not parts:
        return np.full((m, k), pad, dtype=np.float32), np.full((m, k), -1, dtype=np.int64)
    for scores, ids in parts:
        if scores.shape != ids.shape or scores.shape[0] != m:
            raise ValueError(f"scores {scores.shape} and ids {ids.shape} must both be ({m}, n)")
    if len(parts) == 1:
        scores, ids = parts[0]
    else:
        scores = np.concatenate([p[0] for p in parts], axis=1)
        ids = np.concatenate([p[1] for p in parts], axis=1)
    scores = scores.astype(np.float32, copy=True)
    scores[ids < 0] = pad
    if scores.shape[1]:  # one list may come unsorted too (the ingress's merged answers)
        ranking = -scores if higher_is_better(metric) else scores
        order = np.argsort(ranking, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(scores, order, axis=1)
        ids = np.take_along_axis(ids, order, axis=1)
    if ids.shape[1] < k:
        missing = k - ids.shape[1]
        scores = np.pad(scores, ((0, 0), (0, missing)), constant_values=pad)
        ids = np.pad(ids, ((0, 0), (0, missing)), constant_values=-1)
    return scores, ids
