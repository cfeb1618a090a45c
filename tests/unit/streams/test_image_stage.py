"""FetchImages over packed polls of real records and real Pillow images on disk and HTTP."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import numpy as np
import pyarrow as pa
import pytest

from conf.config import ImagesConfig
from streams.events import PinEvent, encode_pin_event
from streams.image_decode import decode_image
from streams.image_stage import IMAGE_COLUMN, FetchImages, image_arrays, image_column
from streams.parse_stage import ParseEvents
from streams.poll_batch import pack, spans_of, spans_table, unpack
from streams.synthetic import PinGenerator, malformed_events
from streams.synthetic_images import write_pin_images
from tests.unit.streams.image_server import image_server
from tests.unit.streams.test_parse_stage import raw_records

IMAGES = ImagesConfig(enabled=True, image_size=16, max_bytes=256 * 1024, timeout_s=2.0)
SPANS = spans_table([(2, 500, 520)])


def polls_of(events: list[PinEvent], extra: list[tuple[bytes | None, bytes | None]]) -> pa.Table:
    """One parsed poll: the encoded events, then the extra raw records."""
    records = [encode_pin_event(event) for event in events] + extra
    return ParseEvents()(pack(raw_records(records), SPANS))


def image_bytes(event: PinEvent) -> bytes:
    """The bytes of the local image a synthetic pin's file:// URL names."""
    assert event.image_url is not None and event.image_url.startswith("file://")
    return Path(url2pathname(urlsplit(event.image_url).path)).read_bytes()


def with_url(event: PinEvent, url: str | None) -> PinEvent:
    return dataclasses.replace(event, image_url=url)


@pytest.fixture
def pins_on_disk(tmp_path: Path) -> list[PinEvent]:
    pins = write_pin_images(PinGenerator(seed=9).pins(4, event_time=1), str(tmp_path), size=32)
    return [pin.event for pin in pins]


def broken_events(tmp_path: Path, template: PinEvent) -> dict[str, tuple[PinEvent, str]]:
    """Upserts whose image fails, with the reason each must get."""
    corrupt = tmp_path / "corrupt.png"
    good = image_bytes(template)
    corrupt.write_bytes(good[: len(good) // 2])
    cases = {
        "missing": ((tmp_path / "missing.png").as_uri(), "not found"),
        "corrupt": (corrupt.as_uri(), "not a decodable image"),
        "scheme": ("ftp://images.example.com/a.png", "scheme 'ftp' is not allowed"),
        "host": ("https://images.example.com/a.png", "is not in images.allowed_hosts"),
    }
    return {
        name: (dataclasses.replace(template, pin_id=f"broken-{name}", image_url=url), reason)
        for name, (url, reason) in cases.items()
    }


def test_good_images_are_decoded_and_broken_ones_get_their_reason(
    pins_on_disk: list[PinEvent], tmp_path: Path
) -> None:
    broken = broken_events(tmp_path, pins_on_disk[0])
    no_image = with_url(dataclasses.replace(pins_on_disk[1], pin_id="no-image"), None)
    delete = PinEvent(pin_id=pins_on_disk[2].pin_id, op="delete", event_time=2)
    bad_key, bad_value, _ = malformed_events()[0]
    events = [*pins_on_disk, *(event for event, _ in broken.values()), no_image, delete]
    polls = polls_of(events, [(bad_key, bad_value)])
    parsed = unpack(polls)

    out = FetchImages(IMAGES)(polls)

    assert out.num_rows == 1  # still one packed poll, its span kept
    assert spans_of(out).to_pylist() == SPANS.to_pylist()
    rows = unpack(out)
    assert rows.column_names == [*parsed.column_names, IMAGE_COLUMN]
    images, present = image_arrays(rows.column(IMAGE_COLUMN), IMAGES.image_size)
    upserts = enumerate(rows.to_pylist())
    by_id = {row["pin_id"]: (i, row) for i, row in upserts if row["op"] == "upsert"}
    for event in pins_on_disk:
        i, row = by_id[event.pin_id]
        data = image_bytes(event)
        np.testing.assert_array_equal(images[i], decode_image(data, 16, IMAGES.max_pixels))
        assert row["error"] is None and row["text"] == parsed.column("text")[i].as_py()
    for event, reason in broken.values():
        i, row = by_id[event.pin_id]
        assert row["error"].startswith("image_url: ") and reason in row["error"], row["error"]
        assert row["text"] is None and not present[i]  # the embedder skips it
    i, row = by_id["no-image"]
    assert row["error"] is None and row["text"] and not present[i]  # a text pin, as before
    delete_rows = [r for r in rows.to_pylist() if r["op"] == "delete"]
    assert [r["error"] for r in delete_rows] == [None] and delete_rows[0][IMAGE_COLUMN] is None
    malformed = rows.to_pylist()[-1]
    assert malformed["error"] == parsed.column("error")[-1].as_py() and not present[-1]
    assert present.sum() == len(pins_on_disk)


def test_with_text_counting_a_pin_whose_image_fails_keeps_its_text(
    pins_on_disk: list[PinEvent], tmp_path: Path
) -> None:
    broken = broken_events(tmp_path, pins_on_disk[0])
    polls = polls_of([pins_on_disk[0], *(event for event, _ in broken.values())], [])
    lenient = dataclasses.replace(IMAGES, text_counts_without_image=True)

    rows = unpack(FetchImages(lenient)(polls))

    _, present = image_arrays(rows.column(IMAGE_COLUMN), 16)
    assert present.tolist() == [True] + [False] * len(broken)
    assert rows.column("error").to_pylist() == [None] * rows.num_rows
    assert rows.column("text").to_pylist() == unpack(polls).column("text").to_pylist()


def test_a_poll_without_images_passes_through_with_an_empty_image_column() -> None:
    events = [with_url(pin.event, None) for pin in PinGenerator(seed=1).pins(3, event_time=1)]
    polls = polls_of(events, [])
    rows = unpack(FetchImages(IMAGES)(polls))
    assert rows.column(IMAGE_COLUMN).null_count == 3
    assert rows.drop_columns([IMAGE_COLUMN]).equals(unpack(polls))


def test_fetches_overlap_up_to_fetch_concurrency(pins_on_disk: list[PinEvent]) -> None:
    files = {f"/{event.pin_id}.png": image_bytes(event) for event in pins_on_disk}
    with image_server(files) as server:
        events = [
            with_url(dataclasses.replace(event, pin_id=f"{event.pin_id}-{copy}"), url)
            for copy in range(3)
            for event in pins_on_disk
            for url in [server.url(f"/slow/{event.pin_id}.png")]
        ]
        web = dataclasses.replace(
            IMAGES, allowed_hosts=("127.0.0.1",), allow_private_addresses=True, fetch_concurrency=3
        )
        rows = unpack(FetchImages(web)(polls_of(events, [])))
        assert server.log.most_in_flight == 3  # each request is held 0.3 s: they overlap
    assert rows.column("error").null_count == rows.num_rows == 12
    assert rows.column(IMAGE_COLUMN).null_count == 0


def test_the_image_column_holds_each_array_or_null() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), None]
    column = image_column(arrays, 4)
    assert column.type == pa.binary(48)
    images, present = image_arrays(column, 4)
    assert present.tolist() == [True, False]
    np.testing.assert_array_equal(images[0], arrays[0])
    assert not images[1].any()
    sliced, present = image_arrays(pa.chunked_array([column, column]).slice(1, 2), 4)
    assert present.tolist() == [False, True]
    np.testing.assert_array_equal(sliced[1], arrays[0])
    assert image_arrays(column.slice(0, 0), 4)[0].shape == (0, 4, 4, 3)
    with pytest.raises(ValueError, match="expected 8x8 RGB"):
        image_arrays(column, 8)
