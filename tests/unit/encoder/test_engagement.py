"""Engagement data: seeded, held-out sets disjoint from training, trend vocabulary unseen."""

import re

import pytest

import encoder.engagement
from encoder.engagement import (
    TREND_VOCABULARY,
    EngagementConfig,
    RetrievalSet,
    data_hash,
    heldout_set,
    training_pairs,
    trend_set,
)
from streams.synthetic import STYLE_VOCABULARY, PinGenerator

SMALL = EngagementConfig(
    train_pins=600,
    train_queries=600,
    heldout_pins=400,
    heldout_queries=60,
    trend_pins=120,
    trend_distractors=200,
    trend_queries=30,
)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_module_says_the_data_is_synthetic_and_how_it_is_split() -> None:
    doc = encoder.engagement.__doc__ or ""
    assert "not real users" in doc
    assert "other seeds" in doc


def test_same_config_gives_identical_data_and_another_seed_does_not() -> None:
    assert training_pairs(SMALL) == training_pairs(SMALL)
    assert heldout_set(SMALL) == heldout_set(SMALL)
    assert trend_set(SMALL) == trend_set(SMALL)
    other = EngagementConfig(**{**SMALL.__dict__, "train_seed": 7})
    assert data_hash(training_pairs(other)) != data_hash(training_pairs(SMALL))


def test_training_pairs_have_both_kinds_and_name_their_intent() -> None:
    pairs = training_pairs(SMALL)
    kinds = {pair.kind for pair in pairs}
    assert kinds == {"save", "click"}
    for pair in pairs:
        style = pair.group.split("|")[0]
        assert style in STYLE_VOCABULARY
        assert style in pair.positive.lower()  # the positive pin is of the intent's style


def test_heldout_boards_and_queries_never_occur_in_training() -> None:
    pairs = training_pairs(SMALL)
    trained_texts = {pair.anchor for pair in pairs} | {pair.positive for pair in pairs}
    heldout = heldout_set(SMALL)
    assert heldout.queries and heldout.boards
    assert not {query.text for query in heldout.queries} & trained_texts
    assert not set(heldout.corpus.values()) & trained_texts
    assert all(pin_id.startswith("heldout-") for pin_id in heldout.corpus)
    train_ids = {p.event.pin_id for p in PinGenerator(SMALL.train_seed, "train").pins(5, 0, 0)}
    assert not train_ids & set(heldout.corpus)


def test_trend_vocabulary_never_appears_in_training_text() -> None:
    training_words: set[str] = set()
    for pair in training_pairs(SMALL):
        training_words |= words(pair.anchor) | words(pair.positive)
    for style, vocabulary in TREND_VOCABULARY.items():
        trend_words = words(" ".join((style, vocabulary.board_label, *vocabulary.words)))
        trend_words -= {"a", "an"}
        assert not trend_words & training_words, style


def test_trend_set_targets_trend_styles_among_known_distractors() -> None:
    trend = trend_set(SMALL)
    assert {board.style for board in trend.boards} == set(TREND_VOCABULARY)
    assert any(pin_id.startswith("known-") for pin_id in trend.corpus)
    for query in trend.queries:
        assert query.clicked
        assert all(pin_id.startswith("trend-") for pin_id in query.clicked)


@pytest.mark.parametrize("data", [heldout_set(SMALL), trend_set(SMALL)], ids=["heldout", "trend"])
def test_boards_hold_every_pin_of_their_style_and_room(data: RetrievalSet) -> None:
    labels = {**STYLE_VOCABULARY, **TREND_VOCABULARY}
    for board in data.boards:
        label = f"Board: {labels[board.style].board_label} {board.room}."
        members = {pin_id for pin_id, text in data.corpus.items() if label in text}
        assert set(board.pin_ids) == members


def test_queries_click_the_pins_that_match_every_named_attribute() -> None:
    heldout = heldout_set(SMALL)
    for query in heldout.queries:
        assert query.clicked, query.text
        named_style = [s for s in STYLE_VOCABULARY if s in query.text]
        for pin_id in query.clicked:
            text = heldout.corpus[pin_id].lower()
            assert all(style in text for style in named_style)


def test_equal_seeds_are_refused() -> None:
    with pytest.raises(ValueError, match="must all differ"):
        EngagementConfig(train_seed=1, heldout_seed=1)
    with pytest.raises(ValueError, match="board_size"):
        EngagementConfig(board_size=1)
