"""`pinstream clip train`: a CLIP-format model fine-tuned on synthetic image pins, scored
before and after on held-out pins, and published to the model registry.

Without `--base`, the model trained is the tiny random CLIP (encoder/tiny_clip.py): no
pretrained CLIP ships as a package and nothing comes from a model hub, so this is how the
image path gets a model on a machine with nothing else. With `--base FOLDER` it is any
CLIP-format folder (a real CLIP exported to transformers). The figures are on synthetic
pictures: they show that the training and the image path work, not real-photo quality.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conf.config import ModelConfig, PinstreamConfig
from encoder.clip_encoder import ClipEncoder
from encoder.clip_finetune import (
    ClipFinetuneConfig,
    finetune_clip,
    synthetic_pairs,
    visual_recall,
)
from encoder.registry import ModelRegistry, ModelVersion
from encoder.tiny_clip import build_tiny_clip
from streams.synthetic import PinGenerator

TRAIN_SEED, HELDOUT_SEED, QUERY_SEED = 1, 2, 3
HELDOUT_PINS, QUERIES = 300, 200


def add_clip_parser(commands: Any) -> None:
    """Register `pinstream clip train` on the `pinstream` command's subparsers."""
    clip = commands.add_parser("clip", help="CLIP-format image models: train one on image pins")
    actions = clip.add_subparsers(dest="action", required=True)
    train = actions.add_parser(
        "train", help="fine-tune on synthetic image pins, score before/after, publish"
    )
    defaults = ClipFinetuneConfig()
    train.add_argument("--base", type=Path, default=None, help="a CLIP folder (default: tiny)")
    train.add_argument("--pins", type=int, default=1500, help="training pins (default: 1500)")
    train.add_argument("--steps", type=int, default=defaults.steps)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--device", default=defaults.device)
    train.add_argument("--version", default=None, help="its id (default: the next ft-NNNN)")
    train.set_defaults(run=run_clip)


def run_clip(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    config = ClipFinetuneConfig(
        steps=args.steps, batch_size=args.batch_size, seed=args.seed, device=args.device
    )
    version = train_visual_model(
        ModelRegistry(cfg.model.registry), config, args.pins, args.base, args.version, print
    )
    print(f"published {version.version}: {recall_table(version.metrics)}")
    print(
        f"serve it with model.kind: clip, model.name: {version.version}, "
        f"shards.dim: {version.metrics['dim']}, images.enabled: true"
    )
    return 0


def train_visual_model(
    registry: ModelRegistry,
    config: ClipFinetuneConfig,
    pins: int,
    base: Path | None = None,
    version: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> ModelVersion:
    """Train `base` (default: the tiny CLIP) on `pins` synthetic image pins; publish it with
    its recall before and after on held-out pins."""
    with tempfile.TemporaryDirectory(prefix="pinstream-clip-") as scratch:
        base = base or build_tiny_clip(Path(scratch) / "tiny-clip", seed=config.seed)
        before_encoder = ClipEncoder(_model(base, config))
        side = before_encoder.image_size
        _, images, texts = synthetic_pairs(TRAIN_SEED, "train", pins, side)
        held, held_images, _ = synthetic_pairs(HELDOUT_SEED, "heldout", HELDOUT_PINS, side)
        queries = PinGenerator(seed=QUERY_SEED).queries(QUERIES)
        styles = [pin.style for pin in held]
        before = visual_recall(before_encoder, held_images, styles, queries)
        log(f"before: {before}")
        trained = Path(scratch) / "trained"
        training = finetune_clip(base, images, texts, trained, config, log)
        after_encoder = ClipEncoder(_model(trained, config))
        after = visual_recall(after_encoder, held_images, styles, queries)
        log(f"after: {after}")
        return registry.publish(
            trained,
            base_model=base.name,
            data_hash=f"synthetic-images:seed={TRAIN_SEED}:pins={pins}",
            metrics={"before": before, "after": after, "dim": after_encoder.dim, **training},
            training={"clip_finetune": dataclasses.asdict(config), "pins": pins},
            version=version,
        )


def recall_table(metrics: dict[str, Any]) -> str:
    """The before/after recall figures of a published visual model, on one line."""
    return ", ".join(
        f"{name} {metrics['before'][name]:.3f} -> {metrics['after'][name]:.3f}"
        for name in metrics["after"]
        if name.endswith("@10")
    )


def _model(folder: Path, config: ClipFinetuneConfig) -> ModelConfig:
    return ModelConfig(kind="clip", name=str(folder), device=config.device)
