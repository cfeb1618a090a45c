"""`pinstream demo`: the whole stack on this machine, ~2,000 synthetic pins, real queries."""

from __future__ import annotations

import base64
import io
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import requests

from conf.config import PinstreamConfig
from encoder.clip_finetune import ClipFinetuneConfig
from encoder.registry import ModelRegistry
from encoder.tiny_clip import TINY_IMAGE_SIZE
from jobs.clip_commands import recall_table, train_visual_model
from jobs.console import Progress
from jobs.stack import LocalStack
from streams.local_broker import free_loopback_port
from streams.producer import PinProducer
from streams.synthetic import PinGenerator, SyntheticPin
from streams.synthetic_images import render_pin_image, write_pin_images

SEARCHABLE_TIMEOUT_S = 300.0
DEMO_FOLDER = "demo"  # under storage.root
FRESHNESS_SAMPLES = 5
# `--images`: the tiny CLIP's training, sized to take about a minute on two CPU cores.
VISUAL_TRAINING = ClipFinetuneConfig(steps=150, batch_size=32)
VISUAL_TRAINING_PINS = 1000


def wait_for_pins(
    url: str,
    expected: int,
    timeout_s: float,
    out: TextIO | None = None,
    check: Callable[[], None] | None = None,
) -> float:
    """Poll /healthz until `expected` pins are indexed; return the monotonic time it happened.

    `check` runs on every poll and raises to give up (an ingest job that died, say).
    """
    progress = Progress("searchable", expected, out) if out is not None else None
    deadline = time.monotonic() + timeout_s
    pins = -1
    try:
        while time.monotonic() < deadline:
            try:
                pins = requests.get(f"{url}/healthz", timeout=5).json()["pins"]
            except (requests.RequestException, ValueError, KeyError):
                pins = -1
            if pins >= expected:
                return time.monotonic()
            if check is not None:
                check()
            if progress is not None:
                progress.update(max(pins, 0))
            time.sleep(0.1)
    finally:
        if progress is not None:
            progress.finish(max(pins, 0))
    raise TimeoutError(f"only {pins} of {expected} pins searchable after {timeout_s:.0f}s")


def pin_searchable_after(url: str, producer: PinProducer, event, timeout_s: float = 60.0) -> float:
    """Produce one pin and return the seconds until GET /v1/pins/{id} finds it."""
    started = time.monotonic()
    producer.send(event)
    producer.flush()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if requests.get(f"{url}/v1/pins/{event.pin_id}", timeout=5).status_code == 200:
            return time.monotonic() - started
        time.sleep(0.02)
    raise TimeoutError(f"pin {event.pin_id} not searchable after {timeout_s:.0f}s")


def _port_is_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def run_demo_session(cfg: PinstreamConfig, count: int, out: TextIO, images: bool = False) -> int:
    """Start the stack, stream `count` pins, wait until searchable, query, stop; exit code.

    With `images`, pins are pictures first: a tiny CLIP is trained on synthetic image pins,
    the pins streamed carry `file://` images, and they are embedded from their pictures.
    The demo keeps its state in a folder of its own, emptied first: an earlier demo's pins
    would be restored (see the README's durability section) and its figures be wrong.
    """
    demo_root = Path(cfg.storage.root) / DEMO_FOLDER
    shutil.rmtree(demo_root, ignore_errors=True)
    cfg = cfg.with_value("storage.root", str(demo_root))
    if images:
        cfg = _visual_config(cfg, demo_root, out)
    if not _port_is_free(cfg.serve.host, cfg.serve.port):
        port = free_loopback_port()
        print(f"port {cfg.serve.port} is busy; serving on {port}", file=out)
        cfg = cfg.with_value("serve.port", port)
    print(
        "pinstream demo: starting broker, Ray, Serve and the ingest job ...", file=out, flush=True
    )
    started = time.monotonic()
    with LocalStack(cfg) as stack:
        url = stack.url
        print(f"stack up in {time.monotonic() - started:.1f}s at {url}", file=out, flush=True)
        generator = PinGenerator(seed=2026, id_prefix="demo")
        pins = generator.pins(count + FRESHNESS_SAMPLES)
        if images:
            pins = write_pin_images(pins, str(demo_root / "images"), seed=2026)
        pins, fresh_pins = pins[:count], pins[count:]
        with PinProducer(stack.cfg.broker.bootstrap, cfg.topics.pins) as producer:
            first_sent = time.monotonic()
            producer.send_all(p.event for p in pins)
            last_sent = time.monotonic()
            print(f"produced {count} synthetic pins in {last_sent - first_sent:.2f}s", file=out)
            all_searchable = wait_for_pins(
                url, count, SEARCHABLE_TIMEOUT_S, out, check=stack.check_ingest
            )
            print(
                f"all {count} pins searchable {all_searchable - first_sent:.2f}s after the first "
                f"was produced ({all_searchable - last_sent:.2f}s after the last)",
                file=out,
            )
            fresh = [pin_searchable_after(url, producer, p.event) for p in fresh_pins]
            print(
                f"single-pin produce-to-searchable: median {statistics.median(fresh):.2f}s "
                f"over {len(fresh)} pins (min {min(fresh):.2f}s, max {max(fresh):.2f}s)",
                file=out,
            )
        _show_queries(url, generator, pins[0].event.pin_id, out)
        if images:
            _show_image_query(url, pins[3], out, indexed=True)
            _show_image_query(url, PinGenerator(seed=7, id_prefix="unseen").pins(1)[0], out)
        print("stopping ...", file=out, flush=True)
    print("demo finished", file=out)
    return 0


def _visual_config(cfg: PinstreamConfig, demo_root: Path, out: TextIO) -> PinstreamConfig:
    """The demo's config for image pins: a tiny CLIP trained here, published to the demo's own
    registry, embedding each pin's picture (fetched from file:// URLs)."""
    print(
        f"training a tiny CLIP on {VISUAL_TRAINING_PINS} synthetic image pins "
        f"({VISUAL_TRAINING.steps} steps, about a minute) ...",
        file=out,
        flush=True,
    )
    registry = ModelRegistry(str(demo_root / "models"))
    version = train_visual_model(
        registry, VISUAL_TRAINING, VISUAL_TRAINING_PINS, version="clip-demo"
    )
    print(f"  held-out synthetic pins: {recall_table(version.metrics)}", file=out)
    return cfg.with_values(
        {
            "model.registry": registry.root,
            "model.name": version.version,
            "model.kind": "clip",
            "model.generation": "tiny-clip-demo",
            "shards.dim": version.metrics["dim"],
            "images.enabled": True,
            "images.schemes": ["file"],
            "images.image_size": TINY_IMAGE_SIZE,
        }
    )


def _show_queries(url: str, generator: PinGenerator, pin_id: str, out: TextIO) -> None:
    for text, style in generator.queries(3):
        response = requests.post(f"{url}/v1/search", json={"text": text, "k": 5}, timeout=30)
        response.raise_for_status()
        body = response.json()
        print(f"\nquery: {text!r}  (style: {style}; {body['took_ms']:.1f} ms)", file=out)
        for hit in body["results"]:
            print(f"  {hit['score']:.3f}  {hit['title']}", file=out)
    related = requests.get(f"{url}/v1/pins/{pin_id}/related", params={"k": 5}, timeout=30).json()
    title = requests.get(f"{url}/v1/pins/{pin_id}", timeout=30).json()["title"]
    print(f"\nrelated to {pin_id} ({title!r}):", file=out)
    for hit in related["results"]:
        print(f"  {hit['score']:.3f}  {hit['title']}", file=out)


def _show_image_query(url: str, pin: SyntheticPin, out: TextIO, indexed: bool = False) -> None:
    """Search by the picture of a pin: an indexed one should find itself first, an unseen
    one pins of its style."""
    encoded = io.BytesIO()
    render_pin_image(pin, seed=2026).save(encoded, "PNG")
    body: dict[str, Any] = {"image_base64": base64.b64encode(encoded.getvalue()).decode(), "k": 5}
    response = requests.post(f"{url}/v1/search", json=body, timeout=30)
    response.raise_for_status()
    found = response.json()
    which = f"indexed pin {pin.event.pin_id}" if indexed else f"unseen {pin.style} pin"
    print(f"\nsearch by the picture of an {which} ({found['took_ms']:.1f} ms):", file=out)
    for hit in found["results"]:
        print(f"  {hit['score']:.3f}  {hit['title']}", file=out)
    if indexed:
        first = found["results"][0]["pin_id"] if found["results"] else None
        print(
            f"  {'found itself first' if first == pin.event.pin_id else 'NOT itself first'}",
            file=out,
        )
