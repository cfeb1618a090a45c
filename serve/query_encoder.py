"""The query encoder: turns query texts and images into vectors, batching concurrent requests."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from ray import serve

from conf.config import ModelConfig, ServeConfig
from encoder.embedder import set_torch_threads
from encoder.encoders import has_image_tower, load_encoder
from serve.metrics import encoder_batch_size_histogram


class QueryEncoder:
    """Serve runs this as a deployment; concurrent `encode` calls share one model batch, and
    so do concurrent `encode_image` calls."""

    def __init__(self, model: ModelConfig, settings: ServeConfig) -> None:
        set_torch_threads(dataclasses.replace(model, threads=settings.encoder_threads))
        self.encoder = load_encoder(model)
        self.batch_sizes = encoder_batch_size_histogram()
        for method in (self.encode, self.encode_image):
            batched: Any = method  # the @serve.batch wrapper, typed as the plain method
            batched.set_max_batch_size(settings.encoder_max_batch_size)
            batched.set_batch_wait_timeout_s(settings.encoder_batch_wait_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def encode(self, texts: list[str]) -> list[np.ndarray]:
        """One unit-norm float32 vector per text."""
        self.batch_sizes.observe(len(texts))
        return list(self.encoder.encode(texts))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def encode_image(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        """One unit-norm float32 vector per (s, s, 3) uint8 RGB image (s the same for all:
        images.image_size), from the image tower; None for each when the model has none (the
        caller names the generation in its error)."""
        encoder = self.encoder
        if not has_image_tower(encoder):
            return [None] * len(images)
        return list(encoder.encode_images(np.stack(images)))
