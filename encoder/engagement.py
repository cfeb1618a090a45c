"""Synthetic engagement for fine-tuning and evaluating the encoder: generated, not real users.

Users save pins to boards and click pins they searched for. Both follow the synthetic
pins of `streams.synthetic`:

- A board is one style x one room ("Farmhouse Kitchen"): users save pins of that style
  whose creator filed them under that room, whatever their category, material or colour.
- A query names a style (by name, or only by its vocabulary: "distressed oak sofa"), a
  category, and sometimes a colour, material or room; users click the pins that match
  every attribute the query names.

Why the base model has something to learn: the base encoder's neighbours are driven
by what a pin *is* (category, material, colour words, which all styles share), while
engagement groups pins by *style and room*. A farmhouse oak armchair sits closer to a
rustic oak armchair than to a farmhouse shiplap lamp for the base model, but the board
wants the lamp. Every attribute engagement depends on is written in the pin's text
(title, description, tags and its own board label), so a model can learn it from text.

Honest splits, all from the same generators with other seeds, never split off the
training pairs:

- training: pins, boards, board saves and query clicks from `train_seed`;
- held-out: a new corpus of pins, its boards and queries from `heldout_seed`, its pin ids
  under another prefix; a held-out query whose text also occurs in training is dropped,
  so no held-out board or query text is ever trained on;
- new trend: pins of styles the training data never shows (TREND_VOCABULARY: no word of
  theirs appears in any training text), mixed with known-style pins as distractors, with
  their boards and queries, from `trend_seed`.

Every output depends only on the config's seeds and sizes.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from streams.pin_text import pin_text
from streams.synthetic import (
    STYLE_VOCABULARY,
    PinGenerator,
    StyleVocabulary,
    SyntheticPin,
    bare_motif,
)

# Styles that trend after training: no word of theirs is in STYLE_VOCABULARY or any template.
TREND_VOCABULARY: dict[str, StyleVocabulary] = {
    "cottagecore": StyleVocabulary(
        "Cottagecore",
        ("whimsical", "pastoral", "ditsy-print", "romantic"),
        ("gingham", "pressed flowers", "a wildflower meadow", "scalloped edges"),
    ),
    "grandmillennial": StyleVocabulary(
        "Grandmillennial",
        ("chintzy", "ruffled", "preppy", "heirloom"),
        ("needlepoint pillows", "wicker trays", "pleated lampshades", "floral wallpaper"),
    ),
}

PairKind = Literal["save", "click"]
_BOARD_NAMES = (
    "{Label} {Room}",
    "{style} {room} ideas",
    "my {adjective} {room}",
    "{room} with {motif}",
    "{adjective} {style} {room}",
)
# Each template with the pin attributes a click on it must match ("style" is always implied).
_QUERIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("{style} {category}", ("category",)),
    ("{colour} {style} {category}", ("category", "colour")),
    ("{adjective} {material} {category}", ("category", "material")),
    ("{adjective} {category} with {motif}", ("category",)),
    ("{adjective} {room} with {motif}", ("room",)),
)


@dataclass(frozen=True)
class EngagementConfig:
    """Seeds and sizes of the engagement data; the three seeds must differ."""

    train_seed: int = 0
    heldout_seed: int = 1
    trend_seed: int = 2
    train_pins: int = 4000
    train_queries: int = 6000
    heldout_pins: int = 2000
    heldout_queries: int = 300
    trend_pins: int = 400
    trend_distractors: int = 1200
    trend_queries: int = 150
    board_size: int = 10

    def __post_init__(self) -> None:
        if len({self.train_seed, self.heldout_seed, self.trend_seed}) != 3:
            raise ValueError("train_seed, heldout_seed and trend_seed must all differ")
        for name in (
            "train_pins",
            "train_queries",
            "heldout_pins",
            "heldout_queries",
            "trend_pins",
            "trend_distractors",
            "trend_queries",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.board_size < 2:
            raise ValueError(f"board_size must be >= 2, got {self.board_size}")


@dataclass(frozen=True)
class Pair:
    """One positive pair for contrastive training.

    kind: "save" (board name -> a pin saved to it) or "click" (query -> a clicked pin).
    `group` is the intent behind the pair: two pairs of one group are interchangeable, so
    they must not be each other's negatives.
    """

    anchor: str
    positive: str
    kind: PairKind
    group: str


@dataclass(frozen=True)
class Board:
    """A board of an evaluation set: every corpus pin of one style x room."""

    board_id: str
    style: str
    room: str
    pin_ids: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    """A query of an evaluation set and every corpus pin that matches it (the clicks)."""

    text: str
    clicked: tuple[str, ...]


@dataclass(frozen=True)
class RetrievalSet:
    """A corpus of pin texts with the boards and queries whose pins are to be retrieved."""

    name: str
    corpus: dict[str, str]
    boards: tuple[Board, ...]
    queries: tuple[Query, ...]


def room_of(pin: SyntheticPin, vocabulary: Mapping[str, StyleVocabulary]) -> str:
    """The room of the board the pin's creator filed it under."""
    return pin.event.board.removeprefix(vocabulary[pin.style].board_label + " ")


def text_of(pin: SyntheticPin) -> str:
    """The text the encoder embeds for a synthetic pin."""
    event = pin.event
    return pin_text(event.title or "", event.description or "", event.board or "", event.tags)


def training_pairs(config: EngagementConfig) -> list[Pair]:
    """Board saves and query clicks of the training seed, in a seeded order."""
    rng = random.Random(f"{config.train_seed}:engagement:train")
    pins = PinGenerator(config.train_seed, "train").pins(config.train_pins, event_time=0)
    pairs: list[Pair] = []
    for (style, room), members in sorted(_by_intent(pins, STYLE_VOCABULARY).items()):
        rng.shuffle(members)
        group = f"{style}|{room}"
        for start in range(0, len(members), config.board_size):
            board = members[start : start + config.board_size]
            name = _board_name(rng, style, STYLE_VOCABULARY[style], room)
            pairs.extend(Pair(name, text_of(pin), "save", group) for pin in board)
    for _ in range(config.train_queries):
        pin = rng.choice(pins)
        text, _ = _query(rng, pin, STYLE_VOCABULARY)
        pairs.append(Pair(text, text_of(pin), "click", f"{pin.style}|{pin.category}"))
    rng.shuffle(pairs)
    return pairs


def heldout_set(config: EngagementConfig) -> RetrievalSet:
    """Boards and queries over a corpus from the held-out seed; no query text is a training one."""
    pins = PinGenerator(config.heldout_seed, "heldout").pins(config.heldout_pins, event_time=0)
    trained = {pair.anchor for pair in training_pairs(config) if pair.kind == "click"}
    return _retrieval_set(
        "heldout",
        pins,
        pins,
        STYLE_VOCABULARY,
        config.heldout_queries,
        random.Random(f"{config.heldout_seed}:engagement:heldout"),
        trained,
    )


def trend_set(config: EngagementConfig) -> RetrievalSet:
    """Boards and queries of styles unseen in training, among known-style distractor pins."""
    trend = PinGenerator(config.trend_seed, "trend", TREND_VOCABULARY).pins(
        config.trend_pins, event_time=0
    )
    distractors = PinGenerator(config.trend_seed, "known").pins(
        config.trend_distractors, event_time=0
    )
    return _retrieval_set(
        "new-trend",
        trend + distractors,
        trend,
        {**STYLE_VOCABULARY, **TREND_VOCABULARY},
        config.trend_queries,
        random.Random(f"{config.trend_seed}:engagement:trend"),
        set(),
    )


def data_hash(pairs: Iterable[Pair]) -> str:
    """sha256 of the training pairs, in order: two runs on equal data share it."""
    digest = hashlib.sha256()
    for pair in pairs:
        for field in (pair.kind, pair.group, pair.anchor, pair.positive):
            digest.update(field.encode())
            digest.update(b"\0")
    return digest.hexdigest()


def _retrieval_set(
    name: str,
    corpus_pins: Sequence[SyntheticPin],
    target_pins: Sequence[SyntheticPin],
    vocabulary: Mapping[str, StyleVocabulary],
    query_count: int,
    rng: random.Random,
    excluded_queries: set[str],
) -> RetrievalSet:
    """Boards (one per style x room of `target_pins`, holding all its pins) and queries drawn
    from `target_pins`, each with every `corpus_pins` pin it matches."""
    boards = tuple(
        Board(f"{name}-board-{i:04d}", style, room, tuple(p.event.pin_id for p in members))
        for i, ((style, room), members) in enumerate(
            sorted(_by_intent(target_pins, vocabulary).items())
        )
    )
    queries: dict[str, Query] = {}
    for _ in range(query_count * 20):  # bounded: excluded texts may leave fewer than asked
        if len(queries) >= query_count or not target_pins:
            break
        text, attributes = _query(rng, rng.choice(target_pins), vocabulary)
        if text in excluded_queries or text in queries:
            continue
        clicked = tuple(p.event.pin_id for p in corpus_pins if _matches(p, attributes, vocabulary))
        queries[text] = Query(text, clicked)
    corpus = {pin.event.pin_id: text_of(pin) for pin in corpus_pins}
    return RetrievalSet(name, corpus, boards, tuple(queries.values()))


def _by_intent(
    pins: Iterable[SyntheticPin], vocabulary: Mapping[str, StyleVocabulary]
) -> dict[tuple[str, str], list[SyntheticPin]]:
    groups: dict[tuple[str, str], list[SyntheticPin]] = defaultdict(list)
    for pin in pins:
        groups[(pin.style, room_of(pin, vocabulary))].append(pin)
    return groups


def _board_name(rng: random.Random, style: str, vocabulary: StyleVocabulary, room: str) -> str:
    return rng.choice(_BOARD_NAMES).format(
        Label=vocabulary.board_label,
        Room=room,
        style=style,
        room=room.lower(),
        adjective=rng.choice(vocabulary.adjectives),
        motif=bare_motif(rng.choice(vocabulary.motifs)),
    )


def _query(
    rng: random.Random, pin: SyntheticPin, vocabulary: Mapping[str, StyleVocabulary]
) -> tuple[str, dict[str, str]]:
    """A query a user who clicked `pin` might have typed, and the attributes it names."""
    template, named = rng.choice(_QUERIES)
    style = vocabulary[pin.style]
    room = room_of(pin, vocabulary)
    text = template.format(
        style=pin.style,
        category=pin.category,
        colour=pin.colour,
        material=pin.material,
        room=room.lower(),
        adjective=rng.choice(style.adjectives),
        motif=bare_motif(rng.choice(style.motifs)),
    )
    values = {
        "category": pin.category,
        "colour": pin.colour,
        "material": pin.material,
        "room": room,
    }
    return text.lower(), {"style": pin.style, **{key: values[key] for key in named}}


def _matches(
    pin: SyntheticPin, attributes: Mapping[str, str], vocabulary: Mapping[str, StyleVocabulary]
) -> bool:
    values = {
        "style": pin.style,
        "category": pin.category,
        "colour": pin.colour,
        "material": pin.material,
        "room": room_of(pin, vocabulary),
    }
    return all(values[key] == value for key, value in attributes.items())
