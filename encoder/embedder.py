"""The embedding stage: Ray Data runs it in warm actors, a unit test just calls it."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import pyarrow as pa
import torch

from conf.config import ModelConfig
from encoder.clip_encoder import ClipEncoder
from encoder.encoders import load_encoder
from encoder.exceptions import EncoderError
from streams.image_stage import IMAGE_COLUMN, image_arrays
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

Item = TypeVar("Item")


def encode_isolating(
    encode: Callable[[list[Item]], np.ndarray],
    items: Sequence[Item],
    dim: int,
    probe: Item = PROBE_TEXT,  # type: ignore[assignment]
) -> tuple[np.ndarray, list[str | None]]:
    """Vectors of `items` (texts, or images), and per item the reason it could not be
    embedded (None: it was).

    A batch that fails is split in halves until the items that fail alone are found; an
    item whose vector is not finite fails too. Their rows of the result are zero. When
    any item failed, the probe must embed: if it does not, the encoder itself is broken
    (not the data), and that raises.
    """
    vectors = np.zeros((len(items), dim), dtype=np.float32)
    reasons: list[str | None] = [None] * len(items)

    def embed(indices: list[int]) -> None:
        try:
            got = np.asarray(encode([items[i] for i in indices]), dtype=np.float32)
            if got.shape != (len(indices), dim):
                raise EncoderError(f"encoder returned shape {got.shape} for {len(indices)} items")
        except Exception as exc:  # split to find the item that fails; the probe tells bugs
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

    if items:
        embed(list(range(len(items))))
    if any(reasons):
        try:
            probed = np.asarray(encode([probe]), dtype=np.float32)
        except Exception as exc:
            raise EncoderError(f"the encoder fails on every input: {exc}") from exc
        if probed.shape != (1, dim) or not np.isfinite(probed).all():
            raise EncoderError("the encoder gives no finite vector even for the probe")
    return vectors, reasons


class Embedder:
    """Adds `vector` to every record that has `text`; the model loads once per actor.

    With a CLIP-format model (`model.kind: clip`) a record that has an `image` (the image
    stage's column) gets its image's vector, fused with its text's by `model.image_weight`;
    one without gets its text's. The `image` column is dropped: the driver needs vectors,
    not pixels. A record the encoder cannot take gets `error` (it goes to the DLQ) and no
    vector; the other records of its batch are embedded as usual.
    """

    def __init__(self, model: ModelConfig) -> None:
        set_torch_threads(model)
        self.model = model
        self.encoder = load_encoder(model)

    def __call__(self, polls: pa.Table) -> pa.Table:
        records = unpack(polls)
        images, has_image = self._images(records)
        records = records.drop_columns([c for c in (IMAGE_COLUMN,) if c in records.column_names])
        texts = records.column("text").to_pylist()
        with_text = [i for i, t in enumerate(texts) if t is not None]
        clip = self.encoder if isinstance(self.encoder, ClipEncoder) else None
        pictured = [row for row, i in enumerate(with_text) if has_image[i]] if clip else []
        # A picture's vector alone (image_weight 1) needs no text vector: none is computed.
        only_picture = set(pictured) if self.model.image_weight == 1.0 else set()
        needs_text = [row for row in range(len(with_text)) if row not in only_picture]
        vectors = np.zeros((len(with_text), self.encoder.dim), dtype=np.float32)
        reasons: list[str | None] = [None] * len(with_text)
        vectors[needs_text], text_reasons = encode_isolating(
            self.encoder.encode, [texts[with_text[row]] for row in needs_text], self.encoder.dim
        )
        for row, reason in zip(needs_text, text_reasons, strict=True):
            reasons[row] = reason
        if clip is not None and pictured:
            vectors[pictured], image_reasons = self._image_vectors(
                clip, images[[with_text[row] for row in pictured]], vectors[pictured]
            )
            for row, reason in zip(pictured, image_reasons, strict=True):
                reasons[row] = reasons[row] or reason
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

    def _images(self, records: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """The records' decoded images and which records have one (none without the column)."""
        if IMAGE_COLUMN not in records.column_names:
            return np.zeros((records.num_rows, 0, 0, 3), np.uint8), np.zeros(records.num_rows, bool)
        column = records.column(IMAGE_COLUMN)
        side = math.isqrt(column.type.byte_width // 3)
        return image_arrays(column, side)

    def _image_vectors(
        self, encoder: ClipEncoder, images: np.ndarray, text_vectors: np.ndarray
    ) -> tuple[np.ndarray, list[str | None]]:
        """Each image's vector fused with its text's, unit length; the reasons of failures."""
        probe = np.zeros(images.shape[1:], dtype=np.uint8)
        pictures, reasons = encode_isolating(
            lambda batch: encoder.encode_images(np.stack(batch)), list(images), encoder.dim, probe
        )
        weight = self.model.image_weight
        fused = weight * pictures + (1.0 - weight) * text_vectors
        norms = np.linalg.norm(fused, axis=1, keepdims=True)
        return (fused / np.where(norms > 0, norms, 1.0)).astype(np.float32), reasons
