"""Contrastive fine-tuning of a CLIP-format dual encoder on (pin image, pin text) pairs, and
its retrieval quality: text -> image and image -> image recall@k.

Training is CLIP's own objective (`CLIPModel(..., return_loss=True)`: symmetric InfoNCE over
the batch, the model's learnt temperature). Quality is measured on held-out pins, relevance
by style, as the text encoder's evaluation does by board: a query that asks for a style
should find that style's pictures, and a picture should find others of its style. On the
synthetic pins (`streams/synthetic_images.py` renders them) these figures say that the
machinery learns what the pictures hold, not how a real model does on real photographs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoder.clip_encoder import ClipEncoder, pixel_statistics, pixel_values
from encoder.evaluation import recall_at_k, top_k
from encoder.model_folder import load_model, save_model
from encoder.text_encoder import resolve_device
from streams.pin_text import pin_text
from streams.synthetic import PinGenerator, SyntheticPin
from streams.synthetic_images import render_pin_image

Log = Callable[[str], None]


@dataclass(frozen=True)
class ClipFinetuneConfig:
    """Training settings; the defaults take about a minute on two CPU cores (tiny CLIP)."""

    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    max_seq_length: int = 64
    seed: int = 0
    device: str = "auto"
    log_every: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "max_seq_length", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"clip_finetune.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("clip_finetune.batch_size must be >= 2: in-batch negatives")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise ValueError("clip_finetune.learning_rate must be > 0, weight_decay >= 0")


def finetune_clip(
    folder: Path,
    images: np.ndarray,
    texts: Sequence[str],
    out: Path,
    config: ClipFinetuneConfig,
    log: Log = lambda line: None,
) -> dict[str, Any]:
    """Train the CLIP model of `folder` on the (images[i], texts[i]) pairs and write it to `out`
    as a model folder; the training summary."""
    if len(images) != len(texts) or len(texts) < config.batch_size:
        raise ValueError(f"need >= {config.batch_size} pairs, as many images as texts")
    device = resolve_device(config.device)
    tokenizer, model = load_model(folder)
    model = model.to(device).train()
    mean, std = pixel_statistics(folder)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    started, losses = time.perf_counter(), []
    for step in range(1, config.steps + 1):
        batch = rng.sample(range(len(texts)), config.batch_size)
        tokens = tokenizer(
            [texts[i] for i in batch],
            padding=True,
            truncation=True,
            max_length=config.max_seq_length,
            return_tensors="pt",
        ).to(device)
        loss = model(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            pixel_values=pixel_values(model, images[batch], mean, std),
            return_loss=True,
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % config.log_every == 0 or step == config.steps:
            log(f"step {step}/{config.steps}: loss {np.mean(losses[-config.log_every :]):.3f}")
    save_model(model.eval(), folder, out)
    return {
        "config": asdict(config),
        "pairs": len(texts),
        "seconds": round(time.perf_counter() - started, 1),
        "first_loss": round(losses[0], 4),
        "last_loss": round(float(np.mean(losses[-config.log_every :])), 4),
    }


def visual_recall(
    encoder: ClipEncoder,
    images: np.ndarray,
    styles: Sequence[str],
    queries: Sequence[tuple[str, str]],
    k: int = 10,
) -> dict[str, float]:
    """Mean recall@k over held-out pins (their images and styles): each (text, style) query
    against every image (text -> image), and each image against the others (image -> image);
    the pins of the asked style are relevant."""
    pictures = encoder.encode_images(images)
    by_style: dict[str, set[int]] = {}
    for row, style in enumerate(styles):
        by_style.setdefault(style, set()).add(row)
    asked = [(text, style) for text, style in queries if style in by_style]
    found = top_k(encoder.encode([text for text, _ in asked]), pictures, k, [[]] * len(asked))
    text_to_image = [
        recall_at_k(list(rows), by_style[style], k)
        for rows, (_, style) in zip(found.tolist(), asked, strict=True)
    ]
    others = [row for row, style in enumerate(styles) if len(by_style[style]) > 1]
    found = top_k(pictures[others], pictures, k, [[row] for row in others])
    image_to_image = [
        recall_at_k(list(rows), by_style[styles[row]] - {row}, k)
        for rows, row in zip(found.tolist(), others, strict=True)
    ]
    return {
        f"text_to_image_recall@{k}": round(float(np.mean(text_to_image)), 4),
        f"image_to_image_recall@{k}": round(float(np.mean(image_to_image)), 4),
        "queries": len(asked),
        "images": len(styles),
    }


def synthetic_pairs(
    seed: int, id_prefix: str, count: int, size: int
) -> tuple[list[SyntheticPin], np.ndarray, list[str]]:
    """`count` synthetic pins of a seed, their (count, size, size, 3) rendered images and the
    text the pipeline embeds for each (streams/pin_text.py)."""
    pins = PinGenerator(seed=seed, id_prefix=id_prefix).pins(count)
    images = np.stack([np.asarray(render_pin_image(pin, seed, size)) for pin in pins])
    texts = [
        pin_text(p.event.title, p.event.description, p.event.board, p.event.tags) for p in pins
    ]
    return pins, images, texts
