"""A dual encoder in the CLIP format: an image tower and a text tower into one space.

Any model folder that `transformers` loads as a CLIPModel serves: a real CLIP checkpoint
(OpenAI's, OpenCLIP's exported to transformers, a fine-tuned one), or the tiny random one
`encoder/tiny_clip.py` builds for tests and the demo. Pin vectors come from the image
(fused with the text's when `model.image_weight` < 1), query vectors from the text tower,
or from the image tower for a search by image. Every vector is L2-normalised float32.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conf.config import ModelConfig
from encoder.exceptions import EncoderError
from encoder.model_folder import load_model
from encoder.text_encoder import (
    DTYPES,
    checked_texts,
    encode_in_batches,
    model_path,
    resolve_device,
)

# OpenAI CLIP's pixel statistics: what a folder without a preprocessor_config.json gets.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESSOR_FILE = "preprocessor_config.json"


class ClipEncoder:
    """Encodes texts and (n, s, s, 3) uint8 RGB images into the same unit-norm space."""

    def __init__(self, config: ModelConfig) -> None:
        folder = model_path(config)
        if folder is None:
            raise EncoderError("model.kind clip needs a CLIP model folder or registry version")
        self.config = config
        self._device = resolve_device(config.device)
        if config.dtype != "float32" and self._device.type != "cuda":
            raise EncoderError(f"dtype {config.dtype} needs a CUDA device, got {self._device}")
        self._path = Path(folder)
        tokenizer, model = load_model(self._path, DTYPES[config.dtype])
        if not hasattr(model, "get_image_features"):
            raise EncoderError(f"{self._path} is not a CLIP-format model ({type(model).__name__})")
        self._tokenizer, self._model = tokenizer, model.to(self._device)
        self._dim = int(model.config.projection_dim)
        positions = int(model.config.text_config.max_position_embeddings)
        self._max_tokens = min(config.max_seq_length, positions)
        mean, std = pixel_statistics(self._path)
        self._mean, self._std = mean.to(self._device), std.to(self._device)

    @property
    def dim(self) -> int:
        """Length of each output vector (the model's projection size)."""
        return self._dim

    @property
    def image_size(self) -> int:
        """The side of the square images the image tower takes (others are resized to it)."""
        return int(self._model.config.vision_config.image_size)

    @property
    def device(self) -> torch.device:
        """Device the model runs on."""
        return self._device

    @property
    def model_id(self) -> str:
        """Short model name: the model folder's name."""
        return self._path.name

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The text tower: a C-contiguous float32 [len(texts), dim] array of unit vectors."""
        return self._batched(checked_texts(texts), self._encode_texts)

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """The image tower over (n, s, s, 3) uint8 RGB images (any s: resized to the model's)."""
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise EncoderError(
                f"images must be (n, s, s, 3) uint8, got {images.shape} {images.dtype}"
            )
        return self._batched(images, self._encode_pixels)

    def _batched(self, items: Any, encode_chunk: Callable[[Any], np.ndarray]) -> np.ndarray:
        return encode_in_batches(items, self.config.batch_size, self._dim, encode_chunk)

    @torch.inference_mode()
    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self._max_tokens, return_tensors="pt"
        ).to(self._device)
        features = self._model.get_text_features(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        return _unit(features.pooler_output)

    @torch.inference_mode()
    def _encode_pixels(self, images: np.ndarray) -> np.ndarray:
        return _unit(
            self._model.get_image_features(pixel_values=self.pixel_values(images)).pooler_output
        )

    def pixel_values(self, images: np.ndarray) -> torch.Tensor:
        """The model's input for uint8 RGB images (see `pixel_values`)."""
        return pixel_values(self._model, images, self._mean, self._std)


def pixel_values(
    model: Any, images: np.ndarray, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """A CLIP model's input for (n, s, s, 3) uint8 RGB images: resized to its image size,
    scaled to [0, 1], normalised by the (1, 3, 1, 1) `mean` and `std`, in its dtype."""
    parameter = next(model.parameters())
    side = int(model.config.vision_config.image_size)
    # torch refuses to share memory it may not write: a read-only array (Pillow's) is copied
    pixels = torch.from_numpy(np.require(images, requirements=["C", "W"])).to(parameter.device)
    pixels = pixels.permute(0, 3, 1, 2).float() / 255.0
    if pixels.shape[-2:] != (side, side):
        pixels = torch.nn.functional.interpolate(
            pixels, size=(side, side), mode="bicubic", antialias=True
        )
    return ((pixels - mean.to(pixels.device)) / std.to(pixels.device)).to(parameter.dtype)


def _unit(features: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(features.float(), p=2, dim=1).cpu().numpy()


def pixel_statistics(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The (1, 3, 1, 1) image mean and std of a model folder: its preprocessor config's, else
    CLIP's."""
    mean, std = CLIP_MEAN, CLIP_STD
    path = folder / PREPROCESSOR_FILE
    if path.is_file():
        try:
            settings = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot read {path}: {exc}") from exc
        mean, std = settings.get("image_mean", mean), settings.get("image_std", std)
    return torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
