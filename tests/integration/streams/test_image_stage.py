"""FetchImages on Ray Data over real images, and the ingest job with images on and a CLIP
model: a pin whose image fails goes to the DLQ with the reason, the others are embedded
from their pictures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray

from conf.config import ImagesConfig, PinstreamConfig
from encoder.clip_encoder import ClipEncoder
from encoder.tiny_clip import TINY_DIM, build_tiny_clip
from jobs.ingest import IngestJob
from streams.dead_letter import DeadLetter
from streams.embeddings_log import decode_rows
from streams.events import PinEvent, encode_pin_event
from streams.image_decode import decode_image
from streams.image_stage import IMAGE_COLUMN, FetchImages, image_arrays
from streams.kafka_io import drain
from streams.parse_stage import ParseEvents
from streams.poll_batch import pack, records_of, spans_table, unpack
from streams.producer import PinProducer
from streams.synthetic import PinGenerator
from streams.synthetic_images import write_pin_images

IMAGES = ImagesConfig(enabled=True, image_size=32, max_bytes=64 * 1024, timeout_s=5.0)


def pins_with_images(folder: Path, count: int, prefix: str) -> tuple[list[PinEvent], dict]:
    """`count` pins with images on disk, then three whose image fails, and each reason."""
    pins = write_pin_images(PinGenerator(seed=3, id_prefix=prefix).pins(count), str(folder))
    events = [pin.event for pin in pins]
    truncated = folder / "truncated.png"
    truncated.write_bytes(Path(folder / f"{events[0].pin_id}.png").read_bytes()[:100])
    oversize = folder / "oversize.png"
    oversize.write_bytes(b"\0" * (IMAGES.max_bytes + 1))
    broken = {
        f"{prefix}-broken-truncated": (truncated.as_uri(), "not a decodable image"),
        f"{prefix}-broken-oversize": (oversize.as_uri(), "bytes is over images.max_bytes"),
        f"{prefix}-broken-host": ("https://images.example.com/x.png", "images.allowed_hosts"),
    }
    for pin_id, (url, _) in broken.items():
        events.append(dataclasses.replace(events[0], pin_id=pin_id, image_url=url))
    return events, {pin_id: reason for pin_id, (_, reason) in broken.items()}


def poll_of(events: list[PinEvent], partition: int) -> pa.Table:
    raw = records_of(partition, [encode_pin_event(event) for event in events])
    return ParseEvents()(pack(raw, spans_table([(partition, 0, len(events))])))


def test_the_stage_on_ray_data_decodes_images_and_gives_broken_ones_reasons(
    ray_session, tmp_path: Path
) -> None:
    events, reasons = pins_with_images(tmp_path, 12, "ray")
    polls = pa.concat_tables([poll_of(events[:8], 0), poll_of(events[8:], 1)])

    out = (
        ray.data.from_arrow(polls)
        .map_batches(
            FetchImages,
            fn_constructor_kwargs={"images": IMAGES},
            batch_size=None,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=0.25,
        )
        .to_arrow_refs()
    )
    rows = unpack(pa.concat_tables(ray.get(out)))

    assert sorted(rows.column("pin_id").to_pylist()) == sorted(e.pin_id for e in events)
    images, present = image_arrays(rows.column(IMAGE_COLUMN), IMAGES.image_size)
    for i, row in enumerate(rows.select(["pin_id", "error", "text"]).to_pylist()):
        if row["pin_id"] in reasons:
            assert reasons[row["pin_id"]] in row["error"] and row["text"] is None, row
            assert not present[i]
            continue
        assert row["error"] is None and present[i]
        data = (tmp_path / f"{row['pin_id']}.png").read_bytes()
        np.testing.assert_array_equal(images[i], decode_image(data, 32, IMAGES.max_pixels))


def test_ingest_with_images_embeds_them_with_clip_and_dead_letters_the_failed(
    cfg: PinstreamConfig, ray_session, tmp_path: Path
) -> None:
    folder = build_tiny_clip(tmp_path / "tiny-clip")
    cfg = cfg.with_values(
        {
            "images.enabled": True,
            "images.max_bytes": IMAGES.max_bytes,
            "images.image_size": IMAGES.image_size,
            "model.name": str(folder),
            "model.kind": "clip",
            "model.device": "cpu",
            "shards.dim": TINY_DIM,
        }
    )
    events, reasons = pins_with_images(tmp_path, 10, "ing")
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        for event in events:
            producer.send(event)
        producer.flush()

    stats = IngestJob(cfg, idle_stop_s=2.0).run()

    assert (stats.events, stats.dead_letters, stats.embedded) == (13, 3, 10)
    letters = [
        DeadLetter.from_json_bytes(r.value) for r in drain(cfg.broker.bootstrap, cfg.topics.dlq)
    ]
    by_pin = {letter.key.decode(): letter.reason for letter in letters if letter.key}
    assert set(by_pin) == set(reasons)
    for pin_id, reason in reasons.items():
        assert by_pin[pin_id].startswith("image_url: ") and reason in by_pin[pin_id]
    logged: dict[str, np.ndarray] = {}
    for record in drain(cfg.broker.bootstrap, cfg.topics.embeddings):
        rows = decode_rows(record.value)
        for pin_id, vector in zip(
            rows.column("pin_id").to_pylist(), rows.column("vector").to_pylist(), strict=True
        ):
            logged[pin_id] = np.asarray(vector, np.float32)
    assert set(logged) == {e.pin_id for e in events} - set(reasons)
    # Each pin's vector is its picture's, by the image tower (model.image_weight 1).
    good = [e for e in events if e.pin_id in logged]
    pictures = np.stack(
        [decode_image((tmp_path / f"{e.pin_id}.png").read_bytes(), 32, 10**6) for e in good]
    )
    wanted = ClipEncoder(cfg.model).encode_images(pictures)
    np.testing.assert_allclose(np.stack([logged[e.pin_id] for e in good]), wanted, atol=1e-4)
