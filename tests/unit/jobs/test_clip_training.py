"""`pinstream clip train`: the tiny CLIP trained on synthetic image pins finds pictures by
text better than before, is published with both figures, and serves from the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conf.config import ModelConfig
from encoder.clip_encoder import ClipEncoder
from encoder.clip_finetune import ClipFinetuneConfig, synthetic_pairs
from encoder.registry import ModelRegistry
from encoder.tiny_clip import TINY_DIM, TINY_IMAGE_SIZE
from jobs.clip_commands import recall_table, train_visual_model


def test_training_raises_text_to_image_recall_and_publishes_both_figures(tmp_path: Path) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    config = ClipFinetuneConfig(steps=30, batch_size=16, device="cpu", log_every=10)
    lines: list[str] = []
    version = train_visual_model(registry, config, pins=256, version="clip-t", log=lines.append)
    before, after = version.metrics["before"], version.metrics["after"]
    assert after["text_to_image_recall@10"] > before["text_to_image_recall@10"] + 0.03, lines
    assert version.metrics["last_loss"] < version.metrics["first_loss"]
    assert version.metrics["dim"] == TINY_DIM and "->" in recall_table(version.metrics)
    assert any(line.startswith("step 30/30") for line in lines)
    model = ModelConfig(kind="clip", name="clip-t", registry=registry.root, device="cpu")
    _, images, _ = synthetic_pairs(seed=9, id_prefix="x", count=3, size=TINY_IMAGE_SIZE)
    vectors = ClipEncoder(model).encode_images(images)
    assert vectors.shape == (3, TINY_DIM) and np.isfinite(vectors).all()
