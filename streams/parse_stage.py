"""The parse-and-validate stage: raw poll batches in, parsed records (or their errors) out."""

from __future__ import annotations

import pyarrow as pa

from streams.events import parse_pin_event
from streams.exceptions import InvalidPinEvent
from streams.pin_text import pin_text
from streams.poll_batch import pack, spans_of, unpack

PARSED_FIELDS = {
    "pin_id": pa.string(),
    "op": pa.string(),
    "title": pa.string(),
    "board": pa.string(),
    "text": pa.string(),
    "event_time": pa.int64(),
    "image_url": pa.string(),  # fetched by the image stage (streams/image_stage.py) when on
    "error": pa.string(),
}


class ParseEvents:
    """Ray Data stage: add parsed pin fields; a bad record gets `error`."""

    def __call__(self, polls: pa.Table) -> pa.Table:
        records = unpack(polls)
        parsed: dict[str, list] = {name: [] for name in PARSED_FIELDS}
        keys = records.column("key").to_pylist()
        values = records.column("value").to_pylist()
        for key, value in zip(keys, values, strict=True):
            try:
                event = parse_pin_event(key, value)
            except InvalidPinEvent as exc:
                row = dict.fromkeys(PARSED_FIELDS)
                row["error"] = exc.reason
            else:
                row = {
                    "pin_id": event.pin_id,
                    "op": event.op,
                    "title": event.title,
                    "board": event.board,
                    "text": pin_text(event.title, event.description, event.board, event.tags)
                    if event.op == "upsert"
                    else None,
                    "event_time": event.event_time,
                    "image_url": event.image_url,
                    "error": None,
                }
            for name in PARSED_FIELDS:
                parsed[name].append(row[name])
        # The raw bytes stay: a record the embedder cannot take goes to the DLQ with them.
        out = records
        for name, type_ in PARSED_FIELDS.items():
            out = out.append_column(name, pa.array(parsed[name], type_))
        return pack(out, spans_of(polls))
