"""Retrieval quality of an encoder on engagement data: recall@k and nDCG@k by exact search.

Two tasks per retrieval set (`encoder.engagement`):

- board completion: given `given` pins of a board, rank the rest of the corpus by cosine
  to the mean of their vectors; the board's other pins are relevant;
- query -> pin: rank the corpus by cosine to the query's vector; its clicked pins are
  relevant.

recall@k is |relevant in top k| / min(k, |relevant|), so a perfect ranking scores 1 even
when more than k pins are relevant (BEIR's capped recall); nDCG@k uses binary gains.
The encoder is passed in as a function, so tests rank with toy vectors.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from encoder.engagement import RetrievalSet

Encode = Callable[[Sequence[str]], np.ndarray]
Metrics = dict[str, dict[str, dict[str, float]]]  # set -> task -> metric -> value


@dataclass(frozen=True)
class EvalConfig:
    """How retrieval is scored: cut-off k, pins given per board task, seeded draws per board."""

    k: int = 10
    given: int = 3
    draws: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("k", "given", "draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def recall_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Share of the relevant items found in the top k, out of min(k, |relevant|)."""
    if not relevant:
        raise ValueError("recall needs at least one relevant item")
    hits = sum(1 for item in ranked[:k] if item in relevant)
    return hits / min(k, len(relevant))


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Normalised discounted cumulative gain of the top k, binary relevance."""
    if not relevant:
        raise ValueError("nDCG needs at least one relevant item")
    dcg = sum(1 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg / ideal


def top_k(
    queries: np.ndarray, corpus: np.ndarray, k: int, exclude: Sequence[Sequence[int]]
) -> np.ndarray:
    """Row indexes of the k corpus vectors of highest inner product per query, best first,
    never one of that query's `exclude` rows (exact search)."""
    n, d = corpus.shape
    q, dq = queries.shape
    assert d == dq and len(exclude) == q, (corpus.shape, queries.shape, len(exclude))
    scores = queries.astype(np.float32) @ corpus.astype(np.float32).T
    for row, excluded in enumerate(exclude):
        scores[row, list(excluded)] = -np.inf
    k = min(k, n)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def evaluate_set(
    encode: Encode, data: RetrievalSet, config: EvalConfig
) -> dict[str, dict[str, float]]:
    """recall@k and nDCG@k of board completion and query -> pin retrieval on one set."""
    ids = list(data.corpus)
    row = {pin_id: i for i, pin_id in enumerate(ids)}
    vectors = _checked(encode([data.corpus[pin_id] for pin_id in ids]), len(ids))
    result: dict[str, dict[str, float]] = {}

    given_rows, relevant_boards = [], []
    for board in data.boards:
        if len(board.pin_ids) <= config.given:
            continue
        for draw in range(config.draws):
            rng = random.Random(f"{config.seed}:{board.board_id}:{draw}")
            given = rng.sample(board.pin_ids, config.given)
            given_rows.append([row[pin_id] for pin_id in given])
            relevant_boards.append(set(board.pin_ids) - set(given))
    if given_rows:
        centroids = np.stack([vectors[rows].mean(axis=0) for rows in given_rows])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        ranked = top_k(centroids, vectors, config.k, given_rows)
        result["boards"] = _scores(ranked, ids, relevant_boards, config.k)

    queries = [query for query in data.queries if query.clicked]
    if queries:
        query_vectors = _checked(encode([query.text for query in queries]), len(queries))
        ranked = top_k(query_vectors, vectors, config.k, [[] for _ in queries])
        result["queries"] = _scores(ranked, ids, [set(q.clicked) for q in queries], config.k)
    return result


def evaluate(encode: Encode, sets: Sequence[RetrievalSet], config: EvalConfig) -> Metrics:
    """evaluate_set on every set, keyed by set name."""
    return {data.name: evaluate_set(encode, data, config) for data in sets}


def comparison_table(base: Metrics, model: Metrics, base_name: str, model_name: str) -> str:
    """A text table of two models' metrics per set and task, with the relative change."""
    width = max(8, len(base_name), len(model_name))
    lines = [
        f"{'set':<10} {'task':<8} {'metric':<10} {base_name:>{width}} {model_name:>{width}}"
        f" {'change':>8}"
    ]
    for set_name, tasks in model.items():
        for task, metrics in tasks.items():
            for metric, ours in metrics.items():
                if metric == "tasks":
                    continue
                theirs = base.get(set_name, {}).get(task, {}).get(metric)
                change = f"{(ours / theirs - 1) * 100:+.1f}%" if theirs else "n/a"
                shown = f"{theirs:.3f}" if theirs is not None else "n/a"
                lines.append(
                    f"{set_name:<10} {task:<8} {metric:<10} {shown:>{width}} {ours:>{width}.3f}"
                    f" {change:>8}"
                )
    return "\n".join(lines)


def _scores(
    ranked: np.ndarray, ids: Sequence[str], relevant: Sequence[set[str]], k: int
) -> dict[str, float]:
    recalls, ndcgs = [], []
    for rows, wanted in zip(ranked, relevant, strict=True):
        names = [ids[i] for i in rows]
        recalls.append(recall_at_k(names, wanted, k))
        ndcgs.append(ndcg_at_k(names, wanted, k))
    return {
        f"recall@{k}": float(np.mean(recalls)),
        f"ndcg@{k}": float(np.mean(ndcgs)),
        "tasks": float(len(recalls)),
    }


def _checked(vectors: np.ndarray, rows: int) -> np.ndarray:
    if vectors.ndim != 2 or vectors.shape[0] != rows:
        raise ValueError(f"encode returned shape {vectors.shape}, expected ({rows}, dim)")
    if not np.isfinite(vectors).all():
        raise ValueError("encode returned non-finite values")
    return np.ascontiguousarray(vectors, dtype=np.float32)
