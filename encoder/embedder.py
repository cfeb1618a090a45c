"""The embedding stage: Ray Data runs it in warm actors, a unit test just calls it."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import torch

from conf.config import ModelConfig
from encoder.registry import BASE, ModelRegistry
from encoder.text_encoder import EncoderConfig, TextEncoder
from streams.poll_batch import pack, unpack


def set_torch_threads(model: ModelConfig) -> None:
    """Use `model.threads` CPU threads (0 = every core; Ray sets one per logical CPU share)."""
    torch.set_num_threads(model.threads or os.cpu_count() or 1)


def model_path(model: ModelConfig) -> str | None:
    """The local folder of a configured model: None for `base` (the packaged weights), the
    path itself for a folder (a name with a "/"), else the registry version materialised
    into the local cache, every file checked against its checksum."""
    if model.name == BASE:
        return None
    if "/" in model.name:
        return model.name
    return str(ModelRegistry(model.registry).materialise(model.name))


def encoder_config(model: ModelConfig) -> EncoderConfig:
    """The TextEncoder settings for a configured model (see `model_path`)."""
    return EncoderConfig(
        model_path=model_path(model),
        device=model.device,
        dtype=model.dtype,
        max_seq_length=model.max_seq_length,
        batch_size=model.batch_size,
    )


def vector_column(vectors: np.ndarray, present: np.ndarray) -> pa.FixedSizeListArray:
    """A fixed-size-list column with one row per `present` entry; absent rows are null."""
    n, dim = len(present), vectors.shape[1] if vectors.ndim == 2 else 0
    full = np.zeros((n, dim), dtype=np.float32)
    full[present] = vectors
    return pa.FixedSizeListArray.from_arrays(
        pa.array(full.reshape(-1)), dim, mask=pa.array(~present)
    )


class Embedder:
    """Adds `vector` to every record that has `text`; the model loads once per actor."""

    def __init__(self, model: ModelConfig) -> None:
        set_torch_threads(model)
        self.encoder = TextEncoder(encoder_config(model))

    def __call__(self, polls: pa.Table) -> pa.Table:
        records = unpack(polls)
        texts = records.column("text").to_pylist()
        present = np.array([t is not None for t in texts], dtype=bool)
        vectors = self.encoder.encode([t for t in texts if t is not None])
        if vectors.shape[0] == 0:
            vectors = np.zeros((0, self.encoder.dim), dtype=np.float32)
        return pack(records.append_column("vector", vector_column(vectors, present)))
