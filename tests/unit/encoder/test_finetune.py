"""Contrastive loss, batches without false negatives, and a few real training steps."""

import math

import pytest
import torch

from encoder.engagement import Pair
from encoder.finetune import FinetuneConfig, contrastive_batches, info_nce
from encoder.model_folder import TOKENIZER_FILES, WEIGHTS_FILE, base_model_folder, load_model
from tests.unit.encoder.conftest import TINY_RUN, TinyRun


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=1)


def test_info_nce_is_low_when_pairs_match_and_log_n_when_all_look_alike() -> None:
    anchors = unit(torch.eye(8))
    assert info_nce(anchors, anchors, scale=20.0) < 1e-6
    same = unit(torch.ones(8, 4))
    assert info_nce(same, same, scale=20.0) == pytest.approx(math.log(8), rel=1e-5)


def test_info_nce_rises_when_positives_are_shuffled_and_is_symmetric() -> None:
    torch.manual_seed(0)
    anchors = unit(torch.randn(16, 32))
    positives = unit(anchors + 0.1 * torch.randn(16, 32))
    matched = info_nce(anchors, positives, 20.0)
    assert matched < info_nce(anchors, positives.roll(1, dims=0), 20.0)
    assert matched == pytest.approx(float(info_nce(positives, anchors, 20.0)))


def test_info_nce_gradient_pulls_each_anchor_towards_its_positive() -> None:
    torch.manual_seed(1)
    anchors = torch.randn(6, 16, requires_grad=True)
    positives = unit(torch.randn(6, 16))
    loss = info_nce(unit(anchors), positives, 20.0)
    loss.backward()
    assert anchors.grad is not None
    moved = unit(anchors.detach() - 0.1 * anchors.grad)
    assert info_nce(moved, positives, 20.0) < loss


def pairs(groups: int, per_group: int, kind: str = "click") -> list[Pair]:
    return [
        Pair(f"q{g}-{i}", f"p{g}-{i}", kind, f"g{g}")  # type: ignore[arg-type]
        for g in range(groups)
        for i in range(per_group)
    ]


def test_batches_hold_one_kind_and_distinct_groups_and_are_seeded() -> None:
    data = pairs(10, 5) + pairs(10, 5, "save")
    stream = contrastive_batches(data, 4, seed=3)
    batches = [next(stream) for _ in range(30)]  # more than one epoch
    for batch in batches:
        assert len(batch) == 4
        assert len({p.kind for p in batch}) == 1
        assert len({p.group for p in batch}) == 4
    again = contrastive_batches(data, 4, seed=3)
    assert [next(again) for _ in range(30)] == batches


def test_batches_need_enough_distinct_groups() -> None:
    with pytest.raises(ValueError, match="distinct groups"):
        next(contrastive_batches(pairs(3, 5), 4, seed=0))


def test_finetune_config_is_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        FinetuneConfig(batch_size=1)
    with pytest.raises(ValueError, match="learning_rate"):
        FinetuneConfig(learning_rate=0)


def test_a_few_steps_report_progress_and_change_only_the_unfrozen_weights(
    tiny_run: TinyRun,
) -> None:
    assert [report.step for report in tiny_run.reports] == [1, 2, 3]
    assert all(r.loss > 0 and r.pairs_per_s > 0 for r in tiny_run.reports)
    assert tiny_run.stats.steps == 3 and tiny_run.stats.pairs_seen == 3 * TINY_RUN.batch_size

    files = {path.name for path in tiny_run.folder.iterdir()}
    assert {"config.json", WEIGHTS_FILE, *TOKENIZER_FILES} <= files
    _, base = load_model(base_model_folder())
    _, tuned = load_model(tiny_run.folder)
    base_state, tuned_state = base.state_dict(), tuned.state_dict()
    assert base_state.keys() == tuned_state.keys()
    changed = {name for name in base_state if not torch.equal(base_state[name], tuned_state[name])}
    assert any(name.startswith("encoder.layer.5.") for name in changed)
    frozen = ("embeddings.", "encoder.layer.0.", "encoder.layer.1.")
    assert not {name for name in changed if name.startswith(frozen)}
