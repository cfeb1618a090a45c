"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model, without sentence-transformers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conf.config import ModelConfig
from encoder.exceptions import EncoderError
from encoder.model_folder import CONFIG_FILE, base_model_folder, load_model
from encoder.registry import BASE, ModelRegistry

BASE_MODEL_ID = "all-MiniLM-L6-v2"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def model_path(model: ModelConfig) -> str | None:
    """The local folder of a configured model: None for `base` (the packaged weights), the
    path itself for a folder (a name with a "/"), else the registry version materialised
    into the local cache, every file checked against its checksum."""
    if model.name == BASE:
        return None
    if "/" in model.name:
        return model.name
    return str(ModelRegistry(model.registry).materialise(model.name))


def resolve_device(requested: str) -> torch.device:
    """The torch device of an `auto|cpu|cuda|cuda:N` setting; a missing CUDA device is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EncoderError(f"device {requested!r} requested but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise EncoderError(f"device {requested!r} does not exist")
    return device


class TextEncoder:
    """Encodes texts into L2-normalised float32 vectors (mean pooling, as sentence-transformers)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        """The model of `config` (the `model` section of the config; checked when loaded)."""
        self.config = config if config is not None else ModelConfig()
        self._device = resolve_device(self.config.device)
        if self.config.dtype != "float32" and self._device.type != "cuda":
            raise EncoderError(f"dtype {self.config.dtype} needs a CUDA device, got {self._device}")
        self._folder = model_path(self.config)
        self._path = self._model_folder(self._folder)
        self._tokenizer, self._model = self._load(self._path, DTYPES[self.config.dtype])
        self._dim = int(self._model.config.hidden_size)

    @staticmethod
    def _model_folder(model_path: str | None) -> Path:
        if model_path is None:
            return base_model_folder()
        path = Path(model_path)
        if not (path / CONFIG_FILE).is_file():
            raise EncoderError(f"model folder {path} has no config.json")
        return path

    def _load(self, path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
        tokenizer, model = load_model(path, dtype)
        return tokenizer, model.to(self._device)

    @property
    def dim(self) -> int:
        """Length of each output vector (the model's hidden size)."""
        return self._dim

    @property
    def device(self) -> torch.device:
        """Device the model runs on."""
        return self._device

    @property
    def model_id(self) -> str:
        """Short model name: the base model's name, else the model folder's name."""
        return BASE_MODEL_ID if self._folder is None else self._path.name

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a C-contiguous float32 [len(texts), dim] array of unit-norm vectors."""
        texts = checked_texts(texts)
        return encode_in_batches(texts, self.config.batch_size, self._dim, self._encode_chunk)

    @torch.inference_mode()
    def _encode_chunk(self, texts: list[str]) -> np.ndarray:
        batch = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.config.max_seq_length,
            return_tensors="pt",
        ).to(self._device)
        hidden = self._model(**batch).last_hidden_state.float()  # pool in fp32 for bf16/fp16
        return mean_pool(hidden, batch["attention_mask"]).cpu().numpy()


def checked_texts(texts: Sequence[str]) -> list[str]:
    """`texts` as a list, each one a str (a lone str is refused: it is not a sequence of them)."""
    if isinstance(texts, str):
        raise EncoderError("encode takes a sequence of texts, got a single str")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise EncoderError(f"texts[{i}] is {type(text).__name__}, expected str")
    return list(texts)


def encode_in_batches(
    items: Sequence[Any], batch_size: int, dim: int, encode_chunk: Callable[[Any], np.ndarray]
) -> np.ndarray:
    """The vectors of `items`, encoded `batch_size` at a time: one C-contiguous float32
    [len(items), dim] array; non-finite values are an EncoderError."""
    if len(items) == 0:
        return np.empty((0, dim), dtype=np.float32)
    chunks = [encode_chunk(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    vectors = np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise EncoderError("encoder produced non-finite values")
    return vectors


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Unit-norm mean of each text's token vectors, padding left out (as sentence-transformers)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)
