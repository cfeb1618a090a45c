"""The query encoder: turns query texts and images into vectors, batching concurrent requests."""

from __future__ import annotations

import dataclasses

import numpy as np

from conf.config import ModelConfig, ServeConfig
from encoder.embedder import set_torch_threads
from encoder.encoders import has_image_tower, load_encoder
from serve.metrics import encoder_batch_size_histogram
from serve.micro_batcher import MicroBatcher


class QueryEncoder:
    """Serve runs this as a deployment; concurrent `encode` calls share one model batch, and
    so do concurrent `encode_image` calls: a batch holds what queued while the previous one
    ran (serve/micro_batcher.py, `serve.encoder_max_batch_size`), and a text that arrives
    at an idle encoder waits at most `serve.encoder_batch_wait_s` for company."""

    def __init__(self, model: ModelConfig, settings: ServeConfig) -> None:
        set_torch_threads(dataclasses.replace(model, threads=settings.encoder_threads))
        self.encoder = load_encoder(model)
        self.batch_sizes = encoder_batch_size_histogram()
        size, wait_s = settings.encoder_max_batch_size, settings.encoder_batch_wait_s
        self._texts: MicroBatcher[str, np.ndarray] = MicroBatcher(self._encode_texts, size, wait_s)
        self._images: MicroBatcher[np.ndarray, np.ndarray | None] = MicroBatcher(
            self._encode_images, size, wait_s
        )

    async def encode(self, text: str) -> np.ndarray:
        """The unit-norm float32 vector of a text, encoded with the texts beside it."""
        return await self._texts.submit(text)

    async def encode_image(self, image: np.ndarray) -> np.ndarray | None:
        """The unit-norm float32 vector of an (s, s, 3) uint8 RGB image (s: images.image_size),
        from the image tower, encoded with the images beside it; None when the model has none
        (the caller names the generation in its error)."""
        return await self._images.submit(image)

    def _encode_texts(self, texts: list[str]) -> list[np.ndarray]:
        """One unit-norm float32 vector per text, now."""
        self.batch_sizes.observe(len(texts))
        return list(self.encoder.encode(texts))

    def _encode_images(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        """One vector per image (all of one size), now; None for each without an image tower."""
        encoder = self.encoder
        if not has_image_tower(encoder):
            return [None] * len(images)
        return list(encoder.encode_images(np.stack(images)))
