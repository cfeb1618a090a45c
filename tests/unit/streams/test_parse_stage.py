"""ParseEvents on packed polls of raw records: every row parsed or given its reason, in order."""

import random

import pyarrow as pa
import pytest

from streams.events import PinEvent, encode_pin_event, parse_pin_event
from streams.exceptions import InvalidPinEvent
from streams.parse_stage import PARSED_FIELDS, ParseEvents
from streams.pin_text import pin_text
from streams.poll_batch import RECORD_SCHEMA, empty_records, pack, spans_of, spans_table, unpack
from streams.synthetic import PinGenerator, malformed_events

Record = tuple[bytes | None, bytes | None]


def raw_records(records: list[Record], partition: int = 2, first_offset: int = 500) -> pa.Table:
    """Flat Kafka records with consecutive offsets, as the Kafka source produces them."""
    n = len(records)
    return pa.table(
        {
            "partition": pa.array([partition] * n, pa.int32()),
            "offset": pa.array(range(first_offset, first_offset + n), pa.int64()),
            "timestamp_ms": pa.array([1_700_000_000_000 + i for i in range(n)], pa.int64()),
            "key": pa.array([key for key, _ in records], pa.binary()),
            "value": pa.array([value for _, value in records], pa.binary()),
        },
        schema=RECORD_SCHEMA,
    )


def valid_events() -> list[PinEvent]:
    generator = PinGenerator(seed=11)
    pins = generator.pins(6, event_time=1_700_000_000_000)
    return [
        *(pin.event for pin in pins),
        generator.updated(pins[0], event_time=1_700_000_000_500).event,
        generator.delete(pins[1].event.pin_id, event_time=1_700_000_000_600),
        PinEvent(pin_id="pin-bare", op="upsert", title="  Oak   stool ", event_time=7),
    ]


def mixed_log(seed: int) -> list[tuple[Record, PinEvent | None]]:
    """Valid and malformed records shuffled together; None marks a malformed one."""
    entries: list[tuple[Record, PinEvent | None]] = [
        (encode_pin_event(event), event) for event in valid_events()
    ]
    entries += [((key, value), None) for key, value, _ in malformed_events()]
    random.Random(seed).shuffle(entries)
    return entries


def parse(records: list[Record]) -> pa.Table:
    return unpack(ParseEvents()(pack(raw_records(records), spans_table([]))))


def test_output_is_one_packed_poll_with_parsed_columns() -> None:
    out = ParseEvents()(pack(raw_records([record for record, _ in mixed_log(0)]), spans_table([])))
    assert out.num_rows == 1
    flat = unpack(out)
    assert flat.column_names == RECORD_SCHEMA.names + list(PARSED_FIELDS)
    for name, type_ in PARSED_FIELDS.items():
        assert flat.schema.field(name).type == type_
    for field in RECORD_SCHEMA:
        assert flat.schema.field(field.name).type == field.type


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_against_the_events_they_encode(seed: int) -> None:
    log = mixed_log(seed)
    raw = raw_records([record for record, _ in log])
    flat = unpack(ParseEvents()(pack(raw, spans_table([]))))
    assert flat.num_rows == raw.num_rows
    for name in ("partition", "offset", "timestamp_ms", "key"):
        assert flat.column(name).to_pylist() == raw.column(name).to_pylist()
    for row, ((key, value), event) in zip(flat.to_pylist(), log, strict=True):
        if event is None:
            with pytest.raises(InvalidPinEvent) as refused:
                parse_pin_event(key, value)
            assert row["error"] == refused.value.reason
            assert row["error"]
            assert row["value"] == value
            assert all(row[name] is None for name in PARSED_FIELDS if name != "error")
            continue
        text = None
        if event.op == "upsert":
            text = pin_text(event.title, event.description, event.board, event.tags)
        assert row == {
            "partition": 2,
            "offset": row["offset"],
            "timestamp_ms": row["timestamp_ms"],
            "key": event.pin_id.encode(),
            "value": value,  # kept: the embedder may still send it to the DLQ
            "pin_id": event.pin_id,
            "op": event.op,
            "title": event.title,
            "board": event.board,
            "text": text,
            "event_time": event.event_time,
            "image_url": event.image_url,
            "error": None,
        }


def test_every_malformed_event_gets_a_reason_and_keeps_its_bytes() -> None:
    bad = malformed_events()
    flat = parse([(key, value) for key, value, _ in bad])
    assert flat.column("value").to_pylist() == [value for _, value, _ in bad]
    reasons = flat.column("error").to_pylist()
    assert all(isinstance(reason, str) and reason for reason in reasons), reasons
    assert flat.column("pin_id").null_count == len(bad)


def test_delete_has_no_text_and_upsert_has_text() -> None:
    upsert = PinEvent(pin_id="p1", op="upsert", title="Oak stool", board="Kitchen", event_time=1)
    delete = PinEvent(pin_id="p1", op="delete", event_time=2)
    flat = parse([encode_pin_event(upsert), encode_pin_event(delete)])
    assert flat.column("op").to_pylist() == ["upsert", "delete"]
    assert flat.column("text").to_pylist() == ["Oak stool. Board: Kitchen.", None]
    assert flat.column("error").to_pylist() == [None, None]


def test_many_polls_in_one_block_come_out_in_order() -> None:
    log = [record for record, _ in mixed_log(5)]
    polls = pa.concat_tables(
        [
            pack(raw_records(log[:4], first_offset=0), spans_table([(0, 0, 4)])),
            pack(raw_records(log[4:], first_offset=4), spans_table([(0, 4, 9)])),
        ]
    )
    out = ParseEvents()(polls)
    flat = unpack(out)
    assert flat.column("offset").to_pylist() == list(range(len(log)))
    assert spans_of(out).to_pylist() == [
        {"partition": 0, "start": 0, "end": 4},
        {"partition": 0, "start": 4, "end": 9},
    ]
    assert flat.column("key").to_pylist() == [key for key, _ in log]


def test_empty_poll() -> None:
    out = ParseEvents()(pack(empty_records(), spans_table([])))
    assert out.num_rows == 1
    flat = unpack(out)
    assert flat.num_rows == 0
    assert flat.column_names == RECORD_SCHEMA.names + list(PARSED_FIELDS)
