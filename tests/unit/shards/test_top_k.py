"""merge_top_k against a plain oracle: sort every candidate, keep the best k."""

import numpy as np
import pytest

from shards.top_k import merge_top_k


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_merge_equals_sorting_everything(metric: str) -> None:
    rng = np.random.default_rng(3)
    parts = []
    for n in (5, 0, 7, 3):
        scores = rng.standard_normal((4, n)).astype(np.float32)
        ids = rng.choice(1000, size=(4, n), replace=False).astype(np.int64) + 1000 * len(parts)
        parts.append((scores, ids))
    got_scores, got_ids = merge_top_k(parts, 4, 6, metric)
    for row in range(4):
        pairs = [
            (s, i) for scores, ids in parts for s, i in zip(scores[row], ids[row], strict=True)
        ]
        pairs.sort(key=lambda p: -p[0] if metric == "ip" else p[0])
        assert got_ids[row].tolist() == [i for _, i in pairs[:6]]
        assert np.allclose(got_scores[row], [s for s, _ in pairs[:6]])


def test_short_answers_are_padded_with_the_worst_score_and_id_minus_one() -> None:
    scores, ids = merge_top_k([(np.array([[0.5, 0.9]]), np.array([[7, -1]]))], 1, 4, "ip")
    assert ids.tolist() == [[7, -1, -1, -1]]
    assert scores[0, 0] == np.float32(0.5) and np.isneginf(scores[0, 1:]).all()
    empty_scores, empty_ids = merge_top_k([], 2, 3, "l2")
    assert empty_ids.tolist() == [[-1] * 3] * 2 and np.isposinf(empty_scores).all()


def test_ties_keep_the_earlier_list_first() -> None:
    tie = np.array([[1.0]], dtype=np.float32)
    _, ids = merge_top_k([(tie, np.array([[1]])), (tie, np.array([[2]]))], 1, 2, "ip")
    assert ids.tolist() == [[1, 2]]


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="must both be"):
        merge_top_k([(np.zeros((2, 3)), np.zeros((2, 2), dtype=np.int64))], 2, 1, "ip")


def test_one_unsorted_list_comes_out_sorted() -> None:
    scores = np.array([[0.1, 0.7, 0.4]], dtype=np.float32)
    _, ids = merge_top_k([(scores, np.array([[1, 2, 3]]))], 1, 5, "ip")
    assert ids.tolist() == [[2, 3, 1, -1, -1]]
