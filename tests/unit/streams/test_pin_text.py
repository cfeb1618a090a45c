"""pin_text: the text embedded for a pin."""

from streams.pin_text import pin_text


def test_full_pin_puts_title_first_then_description_board_tags() -> None:
    text = pin_text(
        "Mid-century modern walnut coffee table",
        "Solid walnut with tapered legs.",
        "Living room",
        ["furniture", "walnut"],
    )
    assert text == (
        "Mid-century modern walnut coffee table. Solid walnut with tapered legs. "
        "Board: Living room. Tags: furniture, walnut"
    )


def test_empty_parts_are_skipped() -> None:
    assert pin_text("Walnut table", "", "", []) == "Walnut table."
    assert pin_text("", "  ", "Kitchen", ["", "  "]) == "Board: Kitchen."
    assert pin_text("", "", "", ["diy"]) == "Tags: diy"
    assert pin_text("", "", "", []) == ""


def test_existing_end_punctuation_is_kept() -> None:
    assert pin_text("Best cookies ever!", "Really?", "", []) == "Best cookies ever! Really?"


def test_whitespace_is_collapsed() -> None:
    text = pin_text("  Walnut\n table ", "two\t words", " Living  room ", [" mid century "])
    assert text == "Walnut table. two words. Board: Living room. Tags: mid century"


def test_is_deterministic() -> None:
    args = ("Title", "Description", "Board", ["b", "a"])
    assert pin_text(*args) == pin_text(*args)
    assert pin_text(*args).endswith("Tags: b, a")  # tag order is the caller's
