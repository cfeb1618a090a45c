"""Visual pins benchmark: images/s of the fetch + decode stage and of the image encoder, each
against its bare baseline in the same run, and the tiny CLIP's retrieval quality before and
after `pinstream clip train` on synthetic image pins.

    python -m bench.visual_bench [--images 512] [--repeats 3] [--no-quality]
        [--out bench/results/visual.json]

- fetch + decode: FetchImages (streams/image_stage.py) over a poll of `file://` pins whose
  pictures are PNGs of `--source-size` pixels, decoded to `--image-size`; baseline: the same
  files read and decoded in a plain loop in one thread.
- image encoder: the Embedder stage (encoder/embedder.py) with the tiny CLIP over polls of
  decoded 32x32 pictures; baseline: ClipEncoder.encode_images on the same arrays.
- quality: text -> image and image -> image recall@10 by style on held-out synthetic pins,
  before and after training (jobs/clip_commands.py). Synthetic pictures, not photographs.
Medians over `--repeats`; CPU here (bench/gpu_check.py measures a GPU where one is lent).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.run_header import machine, run_header
from bench.shards_bench import write_results
from conf.config import ImagesConfig, ModelConfig
from encoder.clip_encoder import ClipEncoder
from encoder.clip_finetune import ClipFinetuneConfig
from encoder.embedder import Embedder
from encoder.registry import ModelRegistry
from encoder.tiny_clip import TINY_IMAGE_SIZE, build_tiny_clip
from jobs.clip_commands import train_visual_model
from streams.events import encode_pin_event
from streams.image_decode import decode_image
from streams.image_stage import IMAGE_COLUMN, FetchImages, image_column
from streams.parse_stage import ParseEvents
from streams.poll_batch import pack, records_of, spans_table, unpack
from streams.synthetic import PinGenerator
from streams.synthetic_images import write_pin_images

DEFAULT_OUT = Path("bench/results/visual.json")


def parsed_poll(events: list[Any]) -> pa.Table:
    """One partition's poll of these events, parsed (what the image stage receives)."""
    raw = records_of(0, [encode_pin_event(event) for event in events])
    return ParseEvents()(pack(raw, spans_table([(0, 0, len(events))])))


def rate(count: int, run: Callable[[], object], repeats: int) -> dict[str, Any]:
    """Items/s of `run` (which handles `count` items): median and every repeat, warmed once."""
    run()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - started))
    return {
        "median_per_s": round(statistics.median(rates), 1),
        "repeats": [round(r, 1) for r in rates],
    }


def fetch_decode(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    pins = PinGenerator(seed=5, id_prefix="img").pins(args.images)
    pins = write_pin_images(pins, str(scratch / "images"), size=args.source_size)
    images = ImagesConfig(enabled=True, image_size=args.image_size, fetch_concurrency=args.threads)
    poll = parsed_poll([pin.event for pin in pins])
    stage = FetchImages(images)
    paths = [scratch / "images" / f"{pin.event.pin_id}.png" for pin in pins]

    def bare() -> None:
        for path in paths:
            decode_image(path.read_bytes(), images.image_size, images.max_pixels)

    staged = rate(len(pins), lambda: stage(poll), args.repeats)
    baseline = rate(len(pins), bare, args.repeats)
    return {
        "stage": staged,
        "baseline_one_thread": baseline,
        "ratio": round(staged["median_per_s"] / baseline["median_per_s"], 3),
        "conditions": {
            "images": len(pins),
            "source_pixels": f"{args.source_size}x{args.source_size} PNG",
            "decoded_to": args.image_size,
            "fetch_concurrency": args.threads,
            "scheme": "file",
        },
    }


def image_encoder(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    model = ModelConfig(kind="clip", name=str(folder), device="cpu", batch_size=args.batch)
    pins = PinGenerator(seed=6, id_prefix="enc").pins(args.images)
    pixels = np.random.default_rng(0).integers(
        0, 256, (len(pins), TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 3), dtype=np.uint8
    )
    records = unpack(parsed_poll([pin.event for pin in pins]))
    column = image_column(list(pixels), TINY_IMAGE_SIZE)
    polls = [
        pack(part, spans_table([(0, start, start + part.num_rows)]))
        for start in range(0, len(pins), args.batch)
        if (part := records.append_column(IMAGE_COLUMN, column).slice(start, args.batch))
    ]
    embedder, encoder = Embedder(model), ClipEncoder(model)
    staged = rate(len(pins), lambda: [embedder(poll) for poll in polls], args.repeats)
    baseline = rate(len(pins), lambda: encoder.encode_images(pixels), args.repeats)
    return {
        "stage": staged,
        "baseline_encode_images": baseline,
        "ratio": round(staged["median_per_s"] / baseline["median_per_s"], 3),
        "conditions": {
            "model": "tiny CLIP (random)",
            "image_size": TINY_IMAGE_SIZE,
            "batch": args.batch,
        },
        "note": "every pin has a picture and image_weight is 1: the stage runs no text tower",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--source-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=8, help="images.fetch_concurrency")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-quality", action="store_true", help="skip the training run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    info = machine()
    with tempfile.TemporaryDirectory(prefix="pinstream-visual-") as scratch:
        folder = build_tiny_clip(Path(scratch) / "tiny-clip")
        output: dict[str, Any] = {
            **run_header("visual", argv),
            "machine": info,
            "fetch_decode": fetch_decode(args, Path(scratch)),
            "image_encoder": image_encoder(args, folder),
        }
        if not args.no_quality:
            config = ClipFinetuneConfig(device="cpu")
            version = train_visual_model(ModelRegistry(f"{scratch}/models"), config, pins=1500)
            output["quality"] = {
                "data": "synthetic pictures (streams/synthetic_images.py), held-out seed",
                "before": version.metrics["before"],
                "after": version.metrics["after"],
                "training": {
                    k: version.metrics[k] for k in ("pairs", "seconds", "first_loss", "last_loss")
                },
                "config": version.metrics["config"],
            }
    output["wall_s"] = round(time.perf_counter() - started, 1)
    write_results(args.out, output)
    print(f"wrote {args.out} in {output['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
