"""recall@k and nDCG@k against hand-computed values; exact search; both tasks on toy vectors."""

import math
from collections.abc import Sequence

import numpy as np
import pytest

from encoder.engagement import Board, Query, RetrievalSet
from encoder.evaluation import (
    EvalConfig,
    comparison_table,
    evaluate,
    evaluate_set,
    ndcg_at_k,
    recall_at_k,
    top_k,
)


def test_recall_and_ndcg_of_a_toy_ranking() -> None:
    ranked = ["a", "b", "c", "d"]
    relevant = {"b", "d", "e"}
    assert recall_at_k(ranked, relevant, 3) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    # DCG@3 = 1/log2(3); ideal = 1 + 1/log2(3) + 1/log2(4)
    assert ndcg_at_k(ranked, relevant, 3) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3) + 0.5)
    )
    # DCG@4 = 1/log2(3) + 1/log2(5); the ideal ranking still has 3 relevant items
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 0.5)
    )


def test_a_perfect_ranking_scores_one_even_with_more_relevant_than_k() -> None:
    relevant = {f"p{i}" for i in range(20)}
    ranked = sorted(relevant)
    assert recall_at_k(ranked, relevant, 10) == 1.0
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(1.0)
    assert recall_at_k(["x", *ranked], relevant, 10) == pytest.approx(0.9)


def test_no_relevant_item_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        recall_at_k(["a"], set(), 10)
    with pytest.raises(ValueError):
        ndcg_at_k(["a"], set(), 10)


def test_top_k_is_exact_best_first_and_skips_excluded_rows() -> None:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((50, 8)).astype(np.float32)
    queries = rng.standard_normal((4, 8)).astype(np.float32)
    exclude = [[], [3], [0, 1, 2], []]
    got = top_k(queries, corpus, 5, exclude)
    for row, excluded in enumerate(exclude):
        scores = corpus @ queries[row]
        scores[excluded] = -np.inf
        assert got[row].tolist() == np.argsort(-scores, kind="stable")[:5].tolist()


COLOURS = ("red", "green", "blue")


def toy_set() -> RetrievalSet:
    """Six pins per colour; a board per colour; one query per colour."""
    corpus = {f"{colour}-{i}": f"{colour} thing {i}" for colour in COLOURS for i in range(6)}
    boards = tuple(
        Board(f"b-{colour}", colour, "room", tuple(f"{colour}-{i}" for i in range(6)))
        for colour in COLOURS
    )
    queries = tuple(
        Query(f"{colour} please", tuple(f"{colour}-{i}" for i in range(6))) for colour in COLOURS
    )
    return RetrievalSet("toy", corpus, boards, queries)


def colour_encoder(texts: Sequence[str]) -> np.ndarray:
    """Vectors that know only the colour word: a perfect encoder for the toy set."""
    out = np.zeros((len(texts), len(COLOURS)), dtype=np.float32)
    for row, text in enumerate(texts):
        out[row, COLOURS.index(text.split()[0])] = 1.0
    return out


def blind_encoder(texts: Sequence[str]) -> np.ndarray:
    """Vectors that ignore the colour: each text hashed to a fixed random direction."""
    vectors = np.stack(
        [np.random.default_rng(sum(map(ord, text))).standard_normal(4) for text in texts]
    )
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_a_perfect_encoder_scores_one_on_both_tasks() -> None:
    config = EvalConfig(k=3, given=2, draws=2)
    result = evaluate_set(colour_encoder, toy_set(), config)
    assert result["boards"] == {"recall@3": 1.0, "ndcg@3": pytest.approx(1.0), "tasks": 6.0}
    assert result["queries"] == {"recall@3": 1.0, "ndcg@3": pytest.approx(1.0), "tasks": 3.0}


def test_a_blind_encoder_scores_lower_and_the_table_shows_the_change() -> None:
    config = EvalConfig(k=3, given=2)
    blind = evaluate(blind_encoder, [toy_set()], config)
    perfect = evaluate(colour_encoder, [toy_set()], config)
    assert blind["toy"]["boards"]["recall@3"] < 1.0
    table = comparison_table(blind, perfect, "blind", "perfect")
    assert "toy" in table and "recall@3" in table and "perfect" in table and "%" in table


def test_an_encoder_returning_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        evaluate_set(lambda texts: np.zeros((1, 3), np.float32), toy_set(), EvalConfig())


def test_eval_config_is_checked() -> None:
    with pytest.raises(ValueError, match="given"):
        EvalConfig(given=0)
