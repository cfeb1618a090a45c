"""Image pins for the ingest tests: a tiny CLIP config and pins with file:// pictures."""

from __future__ import annotations

from pathlib import Path

from conf.config import PinstreamConfig
from encoder.tiny_clip import TINY_DIM, TINY_IMAGE_SIZE, build_tiny_clip
from streams.events import PinEvent
from streams.synthetic import PinGenerator
from streams.synthetic_images import write_pin_images


def visual_config(cfg: PinstreamConfig, root: Path) -> PinstreamConfig:
    """`cfg` embedding pins from their pictures with a tiny CLIP built under `root`."""
    folder = build_tiny_clip(root / "tiny-clip")
    return cfg.with_values(
        {
            "model.name": str(folder),  # before the kind: a clip needs a folder
            "model.kind": "clip",
            "model.device": "cpu",
            "shards.dim": TINY_DIM,
            "images.enabled": True,
            "images.image_size": TINY_IMAGE_SIZE,
        }
    )


def image_workload(prefix: str, count: int, root: Path) -> list[PinEvent]:
    """Upserts with pictures on disk, then updates of some (same picture) and deletes of
    others, as `test_ingest_faults.workload` makes them."""
    generator = PinGenerator(seed=21, id_prefix=prefix)
    pins = write_pin_images(generator.pins(count), str(root / "images"), size=TINY_IMAGE_SIZE)
    events = [p.event for p in pins]
    events += [generator.updated(p).event for p in pins[: count // 10]]
    events += [generator.delete(p.event.pin_id) for p in pins[count // 10 : count // 5]]
    return events
