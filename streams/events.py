"""The pin event: the schema of the `pins` topic, its validation and its encoding.

A record's key is the pin_id in UTF-8; its value is a UTF-8 JSON object:

    {"pin_id": str (1-64 chars), "op": "upsert" | "delete",
     "title": str, "description": str, "board": str, "tags": [str, ...],
     "image_url": str | null, "event_time": int (epoch ms)}

An upsert needs pin_id, op, a non-blank title and event_time; the other fields
default to empty. A delete needs only pin_id and op; its content fields are
ignored. Unknown fields are ignored so producers can add fields first.

`image_url` is only checked for size here: which URLs may be fetched depends on the
`images` config, so the fetcher (streams/image_fetch.py) refuses the others, with the
reason, when ingest fetches images.

A tombstone (key = pin_id, value = null), as compacted topics and CDC tools
write deletes, is a delete of the pin in its key.
"""

import json
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from streams.exceptions import InvalidPinEvent

MAX_EVENT_BYTES = 64 * 1024

MAX_PIN_ID_CHARS = 64
MAX_TITLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 5000
MAX_BOARD_CHARS = 200
MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_IMAGE_URL_CHARS = 2048
# The embeddings log stores event_time as Arrow int64.
_MAX_EVENT_TIME = 2**63 - 1

Op = Literal["upsert", "delete"]
_OPS: tuple[Op, ...] = ("upsert", "delete")


@dataclass(frozen=True)
class PinEvent:
    """One validated pin event: an upsert (new or edited pin) or a delete."""

    pin_id: str
    op: Op
    title: str = ""
    description: str = ""
    board: str = ""
    tags: tuple[str, ...] = ()
    image_url: str | None = None
    event_time: int = 0


def now_ms() -> int:
    """The current wall-clock time as epoch milliseconds, the unit of `event_time`."""
    return time.time_ns() // 1_000_000


def parse_pin_event(key: bytes | None, value: bytes | None) -> PinEvent:
    """Validate one Kafka record of the `pins` topic; raise InvalidPinEvent with the reason."""
    if value is None:
        if key is None:
            raise InvalidPinEvent("value: missing (null record without a key)")
        return _tombstone(key)
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidPinEvent(f"event too large: {len(value)} bytes > {MAX_EVENT_BYTES}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPinEvent(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidPinEvent(f"not valid JSON: {exc.msg} at char {exc.pos}") from exc
    except (ValueError, RecursionError) as exc:
        # An integer over Python's digit limit, or nesting deeper than the recursion limit.
        raise InvalidPinEvent(f"not valid JSON: {str(exc)[:120]}") from exc
    if not isinstance(obj, dict):
        raise InvalidPinEvent(f"not a JSON object: got {_json_type(obj)}")
    event = _event_from_object(obj)
    if key is not None:
        _check_key(key, event.pin_id)
    return event


def encode_pin_event(event: PinEvent) -> tuple[bytes, bytes]:
    """The (key, value) record for `event`; raises InvalidPinEvent if it breaks the contract."""
    payload: dict[str, Any] = {
        "pin_id": event.pin_id,
        "op": event.op,
        "event_time": event.event_time,
    }
    if event.op == "upsert":
        payload.update(
            title=event.title,
            description=event.description,
            board=event.board,
            tags=list(event.tags),
            image_url=event.image_url,
        )
    # One validator for both directions, so whatever is produced also parses.
    _event_from_object(payload)
    value = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidPinEvent(f"event too large: {len(value)} bytes > {MAX_EVENT_BYTES}")
    return event.pin_id.encode("utf-8"), value


def _event_from_object(obj: dict[str, Any]) -> PinEvent:
    pin_id = _string(obj, "pin_id", required=True, min_chars=1, max_chars=MAX_PIN_ID_CHARS)
    op = obj.get("op")
    if op not in _OPS:
        raise InvalidPinEvent("op: must be 'upsert' or 'delete'")
    if op == "delete":
        return PinEvent(pin_id=pin_id, op="delete", event_time=_event_time(obj, required=False))
    return PinEvent(
        pin_id=pin_id,
        op="upsert",
        title=_title(obj),
        description=_string(obj, "description", max_chars=MAX_DESCRIPTION_CHARS),
        board=_string(obj, "board", max_chars=MAX_BOARD_CHARS),
        tags=_tags(obj),
        image_url=_image_url(obj),
        event_time=_event_time(obj, required=True),
    )


def _string(
    obj: dict[str, Any],
    field: str,
    *,
    required: bool = False,
    min_chars: int = 0,
    max_chars: int,
) -> str:
    if field not in obj:
        if required:
            raise InvalidPinEvent(f"{field}: missing")
        return ""
    value = obj[field]
    if not isinstance(value, str) or not min_chars <= len(value) <= max_chars:
        size = f"{min_chars}-{max_chars}" if min_chars else f"at most {max_chars}"
        raise InvalidPinEvent(f"{field}: must be a string of {size} characters")
    _check_encodable(field, value)
    return value


def _title(obj: dict[str, Any]) -> str:
    title = _string(obj, "title", required=True, max_chars=MAX_TITLE_CHARS)
    if not title.strip():
        raise InvalidPinEvent("title: must not be blank for an upsert")
    return title


def _tags(obj: dict[str, Any]) -> tuple[str, ...]:
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidPinEvent("tags: must be a list of strings")
    if len(tags) > MAX_TAGS:
        raise InvalidPinEvent(f"tags: at most {MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        if not 1 <= len(tag) <= MAX_TAG_CHARS:
            raise InvalidPinEvent(f"tags: each tag must be 1-{MAX_TAG_CHARS} characters")
        _check_encodable("tags", tag)
    return tuple(cast(list[str], tags))


def _image_url(obj: dict[str, Any]) -> str | None:
    url = obj.get("image_url")
    if url is None:
        return None
    if not isinstance(url, str) or not 1 <= len(url) <= MAX_IMAGE_URL_CHARS:
        raise InvalidPinEvent(
            f"image_url: must be null or a string of 1-{MAX_IMAGE_URL_CHARS} characters"
        )
    _check_encodable("image_url", url)
    return url


def _event_time(obj: dict[str, Any], *, required: bool) -> int:
    if "event_time" not in obj:
        if required:
            raise InvalidPinEvent("event_time: missing")
        return 0
    value = obj["event_time"]
    # bool is a subclass of int, and `true` is no timestamp.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_EVENT_TIME:
        raise InvalidPinEvent("event_time: must be a non-negative integer (epoch ms)")
    return value


def _check_encodable(field: str, value: str) -> None:
    # JSON escapes such as "\ud800" decode to lone surrogates, which no UTF-8 sink accepts.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPinEvent(f"{field}: contains an unpaired surrogate") from exc


def _tombstone(key: bytes) -> PinEvent:
    try:
        pin_id = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPinEvent("key: not valid UTF-8 (tombstone)") from exc
    if not 1 <= len(pin_id) <= MAX_PIN_ID_CHARS:
        raise InvalidPinEvent(
            f"key: a tombstone's key must be a pin_id of 1-{MAX_PIN_ID_CHARS} characters"
        )
    return PinEvent(pin_id=pin_id, op="delete")


def _check_key(key: bytes, pin_id: str) -> None:
    try:
        key_text = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPinEvent("key: not valid UTF-8") from exc
    if key_text != pin_id:
        raise InvalidPinEvent(f"key {key_text[:80]!r} does not match pin_id {pin_id!r}")


def _json_type(obj: object) -> str:
    if isinstance(obj, list):
        return "array"
    if isinstance(obj, str):
        return "string"
    if isinstance(obj, bool):
        return "boolean"
    if isinstance(obj, int | float):
        return "number"
    return "null"
