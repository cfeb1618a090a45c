"""The embedding stage: Ray Data runs it in warm actors, a unit test just calls it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import torch

from conf.config import ModelConfig
from encoder.exceptions import EncoderError
from encoder.text_encoder import TextEncoder
from streams.poll_batch import pack, spans_of, unpack


def set_torch_threads(model: ModelConfig) -> None:
    """Use `model.threads` CPU threads (0 = every core; Ray sets one per logical CPU share)."""
    torch.set_num_threads(model.threads or os.cpu_count() or 1)


def vector_column(vectors: np.ndarray, present: np.ndarray) -> pa.FixedSizeListArray:
    """A fixed-size-list column with one row per `present` entry; absent rows are null."""
    n, dim = len(present), vectors.shape[1] if vectors.ndim == 2 else 0
    full = np.zeros((n, dim), dtype=np.float32)
    full[present] = vectors
    return pa.FixedSizeListArray.from_arrays(
        pa.array(full.reshape(-1)), dim, mask=pa.array(~present)
    )


# Embedded when a record fails: if the encoder takes this, the record was the problem.
PROBE_TEXT = "a probe text that any working encoder embeds"


def encode_isolating(
    encode: Callable[[list[str]], np.ndarray], texts: Sequence[str], dim: int
) -> tuple[np.ndarray, list[str | None]]:
    """Vectors of `texts`, and per text the reason it could not be embedded (None: it was).

    A batch that fails is split in halves until the texts that fail alone are found; a
    text whose vector is not finite fails too. Their rows of the result are zero. When
    any text failed, the probe text must embed: if it does not, the encoder itself is
    broken (not the data), and that raises.
    """
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    reasons: list[str | None] = [None] * len(texts)

    def embed(indices: list[int]) -> None:
        try:
            got = np.asarray(encode([texts[i] for i in indices]), dtype=np.float32)
            if got.shape != (len(indices), dim):
                raise EncoderError(f"encoder returned shape {got.shape} for {len(indices)} texts")
        except Exception as exc:  # split to find the text that fails; the probe tells bugs
            if len(indices) == 1:
                reasons[indices[0]] = f"embedding failed: {type(exc).__name__}: {exc}"[:500]
                return
            half = len(indices) // 2
            embed(indices[:half])
            embed(indices[half:])
            return
        finite = np.asarray(np.isfinite(got).all(axis=1), dtype=bool)
        for i, ok in zip(indices, finite.tolist(), strict=True):
            if not ok:
                reasons[i] = "embedding failed: the vector is not finite"
        vectors[indices] = np.where(finite[:, None], got, 0.0)

    if texts:
        embed(list(range(len(texts))))
    if any(reasons):
        try:
            probe = np.asarray(encode([PROBE_TEXT]), dtype=np.float32)
        except Exception as exc:
            raise EncoderError(f"the encoder fails on every input: {exc}") from exc
        if probe.shape != (1, dim) or not np.isfinite(probe).all():
            raise EncoderError("the encoder gives no finite vector even for the probe text")
    return vectors, reasons


class Embedder:
    """Adds `vector` to every record that has `text`; the model loads once per actor.

    A record the encoder cannot take gets `error` (it goes to the DLQ) and no vector;
    the other records of its batch are embedded as usual.
    """

    def __init__(self, model: ModelConfig) -> None:
        set_torch_threads(model)
        self.encoder = TextEncoder(model)

    def __call__(self, polls: pa.Table) -> pa.Table:
        records = unpack(polls)
        texts = records.column("text").to_pylist()
        with_text = [i for i, t in enumerate(texts) if t is not None]
        vectors, reasons = encode_isolating(
            self.encoder.encode, [texts[i] for i in with_text], self.encoder.dim
        )
        embedded = np.array([reason is None for reason in reasons], dtype=bool)
        present = np.zeros(len(texts), dtype=bool)
        present[with_text] = embedded
        errors = records.column("error").to_pylist()
        for i, reason in zip(with_text, reasons, strict=True):
            if reason is not None:
                errors[i] = reason
        kept = vectors[embedded]
        records = records.set_column(
            records.schema.get_field_index("error"), "error", pa.array(errors, pa.string())
        )
        return pack(records.append_column("vector", vector_column(kept, present)), spans_of(polls))
