import json
from typing import Any

import pytest

from conf.errors import PinstreamError
from streams.events import (
    MAX_EVENT_BYTES,
    PinEvent,
    encode_pin_event,
    parse_pin_event,
)
from streams.exceptions import InvalidPinEvent, StreamError
from streams.synthetic import PinGenerator, malformed_events

UPSERT: dict[str, Any] = {
    "pin_id": "pin-1",
    "op": "upsert",
    "title": "Walnut coffee table",
    "description": "Tapered legs.",
    "board": "Mid-Century Living Room",
    "tags": ["mid-century modern", "walnut"],
    "image_url": "https://images.example.com/pins/pin-1.jpg",
    "event_time": 1_700_000_000_000,
}


def encoded(obj: object) -> bytes:
    return json.dumps(obj).encode("utf-8")


def reason_of(key: bytes | None, value: bytes | None) -> str:
    with pytest.raises(InvalidPinEvent) as info:
        parse_pin_event(key, value)
    return info.value.reason


def test_parses_a_full_upsert_and_ignores_unknown_fields() -> None:
    event = parse_pin_event(b"pin-1", encoded({**UPSERT, "source": "web", "score": 0.5}))

    assert event == PinEvent(
        pin_id="pin-1",
        op="upsert",
        title="Walnut coffee table",
        description="Tapered legs.",
        board="Mid-Century Living Room",
        tags=("mid-century modern", "walnut"),
        image_url="https://images.example.com/pins/pin-1.jpg",
        event_time=1_700_000_000_000,
    )


def test_upsert_optional_fields_default_to_empty() -> None:
    minimal = {"pin_id": "pin-1", "op": "upsert", "title": "Oak desk", "event_time": 0}

    event = parse_pin_event(None, encoded(minimal))

    assert (event.description, event.board, event.tags, event.image_url) == ("", "", (), None)
    assert parse_pin_event(None, encoded({**minimal, "image_url": None})).image_url is None


def test_delete_needs_only_pin_id_and_op() -> None:
    event = parse_pin_event(b"pin-1", b'{"pin_id": "pin-1", "op": "delete"}')

    assert event == PinEvent(pin_id="pin-1", op="delete", event_time=0)


def test_delete_ignores_content_fields_but_keeps_event_time() -> None:
    event = parse_pin_event(None, encoded({**UPSERT, "op": "delete", "title": 7}))

    assert event == PinEvent(pin_id="pin-1", op="delete", event_time=1_700_000_000_000)


def test_accepts_non_ascii_text() -> None:
    event = parse_pin_event("épingle-1".encode(), encoded({**UPSERT, "pin_id": "épingle-1"}))

    assert event.pin_id == "épingle-1"


@pytest.mark.parametrize("entry", malformed_events(), ids=lambda entry: entry[2])
def test_every_malformed_event_is_refused_with_a_reason(
    entry: tuple[bytes | None, bytes | None, str],
) -> None:
    key, value, what_is_wrong = entry
    expected_fragment = {
        "not JSON": "not valid JSON",
        "JSON array, not an object": "not a JSON object",
        "missing pin_id": "pin_id",
        "pin_id too long": "pin_id",
        "wrong op": "op",
        "tags not a list": "tags",
        "event_time a string": "event_time",
        "event_time a boolean": "event_time",
        "invalid UTF-8": "UTF-8",
        "oversize value": "too large",
        "empty value": "not valid JSON",
        "tombstone whose key is not UTF-8": "key",
        "upsert without title": "title",
        "key differs from pin_id": "key",
    }[what_is_wrong]

    assert expected_fragment in reason_of(key, value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"pin_id": ""}, "pin_id"),
        ({"pin_id": 12}, "pin_id"),
        ({"op": None}, "op"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "t" * 501}, "title"),
        ({"description": 3}, "description"),
        ({"description": "d" * 5001}, "description"),
        ({"board": None}, "board"),
        ({"board": "b" * 201}, "board"),
        ({"tags": ["ok", 1]}, "tags"),
        ({"tags": ["t"] * 51}, "tags"),
        ({"tags": ["t" * 101]}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"image_url": 5}, "image_url"),
        ({"image_url": ""}, "image_url"),
        ({"event_time": -1}, "event_time"),
        ({"event_time": 1.5}, "event_time"),
        ({"event_time": False}, "event_time"),
        ({"event_time": 2**63}, "event_time"),
    ],
)
def test_refuses_a_bad_field_naming_it(changes: dict[str, Any], field: str) -> None:
    assert reason_of(None, encoded({**UPSERT, **changes})).startswith(f"{field}:")


@pytest.mark.parametrize("field", ["pin_id", "op", "title", "event_time"])
def test_upsert_refuses_a_missing_required_field(field: str) -> None:
    obj = {name: value for name, value in UPSERT.items() if name != field}

    assert reason_of(None, encoded(obj)).startswith(f"{field}:")


def test_refuses_a_key_that_is_not_the_pin_id() -> None:
    assert "does not match pin_id" in reason_of(b"pin-2", encoded(UPSERT))
    assert reason_of(b"\xff", encoded(UPSERT)) == "key: not valid UTF-8"


def test_refuses_an_unpaired_surrogate_from_a_json_escape() -> None:
    value = encoded(UPSERT).replace(b"Walnut", b"\\ud800Walnut")

    assert reason_of(None, value) == "title: contains an unpaired surrogate"


@pytest.mark.parametrize(
    "value",
    [b"", b"[1, 2", b"1" * 5000, b"[" * 30_000, b'"just a string"', b"null"],
)
def test_refuses_values_that_are_not_a_json_object(value: bytes) -> None:
    assert reason_of(None, value).startswith(("not valid JSON", "not a JSON object"))


def test_size_is_checked_before_decoding() -> None:
    reason = reason_of(None, b"\xff" * (MAX_EVENT_BYTES + 1))

    assert reason == f"event too large: {MAX_EVENT_BYTES + 1} bytes > {MAX_EVENT_BYTES}"


def test_accepts_an_event_of_exactly_the_maximum_size() -> None:
    unpadded = len(encoded({**UPSERT, "padding": ""}))
    value = encoded({**UPSERT, "padding": "x" * (MAX_EVENT_BYTES - unpadded)})

    assert len(value) == MAX_EVENT_BYTES
    assert parse_pin_event(b"pin-1", value).pin_id == "pin-1"


def test_invalid_pin_event_is_a_stream_error_with_its_reason() -> None:
    error = InvalidPinEvent("tags: must be a list of strings")

    assert isinstance(error, StreamError)
    assert isinstance(error, PinstreamError)
    assert error.reason == str(error) == "tags: must be a list of strings"


def test_encode_parse_round_trip_of_generated_pins() -> None:
    for pin in PinGenerator(seed=3).pins(200):
        key, value = encode_pin_event(pin.event)

        assert key == pin.event.pin_id.encode("utf-8")
        assert parse_pin_event(key, value) == pin.event


def test_encode_parse_round_trip_of_non_ascii_upsert() -> None:
    event = PinEvent(pin_id="pin-ü", op="upsert", title="Bouclé armchair ☕", event_time=5)

    assert parse_pin_event(*encode_pin_event(event)) == event


def test_delete_encodes_only_pin_id_op_and_event_time() -> None:
    event = PinEvent(pin_id="pin-1", op="delete", event_time=42)

    key, value = encode_pin_event(event)

    assert json.loads(value) == {"pin_id": "pin-1", "op": "delete", "event_time": 42}
    assert parse_pin_event(key, value) == event


@pytest.mark.parametrize(
    "event",
    [
        PinEvent(pin_id="", op="delete"),
        PinEvent(pin_id="pin-1", op="upsert", title="", event_time=1),
        PinEvent(pin_id="pin-1", op="upsert", title="t", event_time=-1),
        PinEvent(pin_id="pin-1", op="upsert", title="t", description="d" * 6000),
    ],
)
def test_encode_refuses_an_event_that_would_not_parse(event: PinEvent) -> None:
    with pytest.raises(InvalidPinEvent):
        encode_pin_event(event)


def test_a_tombstone_is_a_delete_of_the_pin_in_its_key() -> None:
    assert parse_pin_event(b"pin-7", None) == PinEvent(pin_id="pin-7", op="delete")


@pytest.mark.parametrize("key", [b"", b"p" * 65])
def test_a_tombstone_key_must_be_a_pin_id(key: bytes) -> None:
    assert reason_of(key, None).startswith("key:")


def test_a_record_with_neither_key_nor_value_is_refused() -> None:
    assert reason_of(None, None).startswith("value: missing")
