"""The query encoder: turns query text into vectors, batching concurrent requests."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from ray import serve

from conf.config import ModelConfig, ServeConfig
from encoder.embedder import set_torch_threads
from encoder.text_encoder import TextEncoder
from serve.metrics import encoder_batch_size_histogram


class QueryEncoder:
    """Serve runs this as a deployment; concurrent `encode` calls share one model batch."""

    def __init__(self, model: ModelConfig, settings: ServeConfig) -> None:
        set_torch_threads(dataclasses.replace(model, threads=settings.encoder_threads))
        self.encoder = TextEncoder(model)
        self.batch_sizes = encoder_batch_size_histogram()
        batched: Any = self.encode  # the @serve.batch wrapper, typed as the plain method
        batched.set_max_batch_size(settings.encoder_max_batch_size)
        batched.set_batch_wait_timeout_s(settings.encoder_batch_wait_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def encode(self, texts: list[str]) -> list[np.ndarray]:
        """One unit-norm float32 vector per text."""
        self.batch_sizes.observe(len(texts))
        return list(self.encoder.encode(texts))
