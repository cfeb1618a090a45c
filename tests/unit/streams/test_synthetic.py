import dataclasses
import re

import pytest

import streams.synthetic
from streams.events import encode_pin_event, now_ms, parse_pin_event
from streams.synthetic import (
    CATEGORIES,
    COLOURS,
    MATERIALS,
    STYLE_VOCABULARY,
    STYLES,
    PinGenerator,
    SyntheticPin,
)

FIXED_TIME = 1_700_000_000_000


def pins(count: int = 500, seed: int = 0) -> list[SyntheticPin]:
    return PinGenerator(seed=seed).pins(count, event_time=FIXED_TIME)


def test_module_says_the_data_is_synthetic() -> None:
    assert streams.synthetic.__doc__ is not None
    assert "not real pins" in streams.synthetic.__doc__


def test_vocabulary_has_the_required_entries() -> None:
    assert {
        "mid-century modern",
        "scandinavian",
        "rustic",
        "farmhouse",
        "industrial",
        "bohemian",
        "minimalist",
        "art deco",
        "coastal",
        "japandi",
    } <= set(STYLES)
    assert {
        "coffee table",
        "dining chair",
        "floor lamp",
        "area rug",
        "bookshelf",
        "sofa",
        "bed frame",
        "pendant light",
        "nightstand",
        "wall art",
        "armchair",
        "sideboard",
    } <= set(CATEGORIES)
    assert {"walnut", "oak", "teak", "brass", "marble", "rattan", "linen", "velvet"} <= set(
        MATERIALS
    )
    assert len(COLOURS) >= 8


def test_each_style_has_its_own_vocabulary() -> None:
    owners: dict[str, str] = {}
    for style, vocabulary in STYLE_VOCABULARY.items():
        for word in vocabulary.words:
            assert owners.setdefault(word, style) == style, f"{word!r} is in two styles"
    assert "shiplap" in STYLE_VOCABULARY["farmhouse"].words
    assert "hygge" in STYLE_VOCABULARY["scandinavian"].words
    assert "reclaimed wood" in STYLE_VOCABULARY["rustic"].words


def test_same_seed_gives_identical_pins() -> None:
    assert pins(seed=7) == pins(seed=7)
    assert pins(seed=7) != pins(seed=8)


def test_same_seed_differs_only_in_defaulted_event_time() -> None:
    first = PinGenerator(seed=1).pins(50)
    second = PinGenerator(seed=1).pins(50)

    for a, b in zip(first, second, strict=True):
        assert dataclasses.replace(a.event, event_time=0) == dataclasses.replace(
            b.event, event_time=0
        )


def test_a_pin_does_not_depend_on_the_pins_generated_before_it() -> None:
    generator = PinGenerator(seed=2)

    later = generator.pins(5, start=10, event_time=FIXED_TIME)

    assert later == generator.pins(15, event_time=FIXED_TIME)[10:]


def test_pin_ids_follow_the_prefix_and_index() -> None:
    generated = PinGenerator(id_prefix="demo").pins(3, start=41, event_time=FIXED_TIME)

    assert [pin.event.pin_id for pin in generated] == [
        "demo-00000041",
        "demo-00000042",
        "demo-00000043",
    ]


def test_pins_cover_every_style_and_category() -> None:
    generated = pins()

    assert {pin.style for pin in generated} == set(STYLES)
    assert {pin.category for pin in generated} == set(CATEGORIES)
    assert {pin.material for pin in generated} == set(MATERIALS)
    assert {pin.colour for pin in generated} == set(COLOURS)


def test_titles_name_style_material_category_and_colour() -> None:
    for pin in pins():
        title = pin.event.title.lower()
        for word in (pin.style, pin.material, pin.category, pin.colour):
            assert word in title, (word, title)


def test_descriptions_carry_the_style_vocabulary() -> None:
    for pin in pins():
        description = pin.event.description
        sentences = re.findall(r"[.!?](?:\s|$)", description)

        assert 1 <= len(sentences) <= 2, description
        assert any(word in description for word in STYLE_VOCABULARY[pin.style].words)


def test_tags_hold_the_attributes_and_one_or_two_style_words() -> None:
    for pin in pins():
        attributes, extra = pin.event.tags[:4], pin.event.tags[4:]

        assert attributes == (pin.style, pin.category, pin.material, pin.colour)
        assert 1 <= len(extra) <= 2
        words = " ".join(STYLE_VOCABULARY[pin.style].words)
        assert all(tag in words for tag in extra)


def test_boards_are_a_handful_per_style() -> None:
    boards: dict[str, set[str]] = {}
    for pin in pins(2000):
        assert pin.event.board.startswith(STYLE_VOCABULARY[pin.style].board_label + " ")
        boards.setdefault(pin.style, set()).add(pin.event.board)

    assert all(2 <= len(names) <= 6 for names in boards.values())
    assert "Mid-Century Living Room" in boards["mid-century modern"]


def test_generated_pins_are_valid_events() -> None:
    for pin in pins():
        assert parse_pin_event(*encode_pin_event(pin.event)) == pin.event


def test_event_time_defaults_to_now() -> None:
    before = now_ms()
    generated = PinGenerator().pins(3)
    after = now_ms()

    assert all(before <= pin.event.event_time <= after for pin in generated)


def test_updated_keeps_pin_id_and_changes_title_and_colour() -> None:
    generator = PinGenerator(seed=4)
    for pin in generator.pins(100, event_time=FIXED_TIME):
        update = generator.updated(pin)

        assert update.event.pin_id == pin.event.pin_id
        assert update.event.op == "upsert"
        assert update.colour != pin.colour
        assert update.colour in update.event.title.lower()
        assert update.event.title != pin.event.title
        assert (update.style, update.category, update.material) == (
            pin.style,
            pin.category,
            pin.material,
        )
        assert update.event.board == pin.event.board
        assert update.event.event_time > pin.event.event_time
        assert parse_pin_event(*encode_pin_event(update.event)) == update.event


def test_updated_is_later_even_within_one_millisecond() -> None:
    generator = PinGenerator()
    pin = generator.pins(1, event_time=now_ms() + 60_000)[0]

    assert generator.updated(pin).event.event_time == pin.event.event_time + 1


def test_updated_is_deterministic() -> None:
    pin = pins(1)[0]

    assert PinGenerator().updated(pin, event_time=1) == PinGenerator().updated(pin, event_time=1)


def test_delete_event() -> None:
    event = PinGenerator().delete("pin-00000003", event_time=9)

    assert (event.pin_id, event.op, event.event_time) == ("pin-00000003", "delete", 9)
    assert parse_pin_event(*encode_pin_event(event)) == event


def test_queries_name_known_styles_and_cover_them_all() -> None:
    queries = PinGenerator(seed=5).queries(300)

    assert len(queries) == 300
    assert {style for _, style in queries} == set(STYLES)
    for text, _ in queries:
        assert text and text == text.lower()


def test_queries_are_deterministic_and_mostly_name_their_style() -> None:
    queries = PinGenerator(seed=5).queries(300)
    named = [text for text, style in queries if style in text]

    assert queries == PinGenerator(seed=5).queries(300)
    assert PinGenerator(seed=5).queries(10) == queries[:10]
    assert len(named) > len(queries) // 2


@pytest.mark.parametrize("id_prefix", ["", "p" * 56])
def test_generator_refuses_a_prefix_that_gives_invalid_ids(id_prefix: str) -> None:
    with pytest.raises(ValueError, match="id_prefix"):
        PinGenerator(id_prefix=id_prefix)


def test_generator_refuses_negative_counts() -> None:
    with pytest.raises(ValueError):
        PinGenerator().pins(-1)
    with pytest.raises(ValueError):
        PinGenerator().queries(-1)
