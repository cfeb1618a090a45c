"""DeadLetter: the DLQ record value reads back as the same letter, whatever the raw bytes."""

import base64
import json

import pytest

from streams.dead_letter import PREVIEW_CHARS, DeadLetter
from streams.synthetic import malformed_events


def letter(key: bytes | None, value: bytes | None, reason: str = "not valid JSON") -> DeadLetter:
    return DeadLetter(reason=reason, topic="pins", partition=3, offset=1234, key=key, value=value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"pin-1", b'{"pin_id": "pin-1"'),
        (None, b"{}"),
        (b"pin-1", None),
        (None, None),
        (b"", b""),
        (b"pin-\xff\xfe", b"\xff\xfe\x00 not utf-8 \xc3"),
        ("épingle-☕".encode(), "título — 東京".encode()),
    ],
)
def test_round_trip(key: bytes | None, value: bytes | None) -> None:
    original = letter(key, value)
    assert DeadLetter.from_json_bytes(original.to_json_bytes()) == original


def test_malformed_events_round_trip() -> None:
    for key, value, what in malformed_events():
        original = letter(key, value, reason=what)
        assert DeadLetter.from_json_bytes(original.to_json_bytes()) == original, what


def test_json_is_readable() -> None:
    doc = json.loads(letter(b"pin-7", b'{"op": "insert"}', "op: bad").to_json_bytes())
    assert doc["reason"] == "op: bad"
    assert doc["source"] == {"topic": "pins", "partition": 3, "offset": 1234}
    assert doc["key"] == "pin-7"
    assert base64.b64decode(doc["key_base64"]) == b"pin-7"
    assert doc["value_preview"] == '{"op": "insert"}'
    assert base64.b64decode(doc["value_base64"]) == b'{"op": "insert"}'


def test_null_key_and_value_are_json_null() -> None:
    doc = json.loads(letter(None, None).to_json_bytes())
    assert doc["key"] is None
    assert doc["key_base64"] is None
    assert doc["value_base64"] is None
    assert doc["value_preview"] == ""


def test_empty_value_is_not_null() -> None:
    doc = json.loads(letter(b"k", b"").to_json_bytes())
    assert doc["value_base64"] == ""
    assert DeadLetter.from_json_bytes(letter(b"k", b"").to_json_bytes()).value == b""


def test_preview_is_truncated_but_value_kept_whole() -> None:
    value = b"x" * (PREVIEW_CHARS * 10)
    doc = json.loads(letter(b"k", value).to_json_bytes())
    assert doc["value_preview"] == "x" * PREVIEW_CHARS
    assert DeadLetter.from_json_bytes(letter(b"k", value).to_json_bytes()).value == value


def test_preview_counts_characters_and_never_splits_one() -> None:
    text = "東京の桜" * PREVIEW_CHARS  # 3 bytes per character in UTF-8
    doc = json.loads(letter(b"k", text.encode()).to_json_bytes())
    assert doc["value_preview"] == text[:PREVIEW_CHARS]


def test_preview_of_invalid_utf8_uses_replacement_characters() -> None:
    doc = json.loads(letter(b"k", b"ok \xff\xfe end").to_json_bytes())
    assert doc["value_preview"] == "ok \ufffd\ufffd end"


def test_non_utf8_key_is_readable_and_kept_exactly() -> None:
    doc = json.loads(letter(b"pin-\xff", b"{}").to_json_bytes())
    assert doc["key"] == "pin-\ufffd"
    assert base64.b64decode(doc["key_base64"]) == b"pin-\xff"
