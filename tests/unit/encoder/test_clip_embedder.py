"""The embedding stage with a CLIP-format model: image vectors for pinned images, fused with
the text's by model.image_weight, text vectors for pins without one; pixels dropped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from conf.config import ModelConfig
from encoder.clip_encoder import ClipEncoder
from encoder.embedder import Embedder
from encoder.tiny_clip import TINY_IMAGE_SIZE, build_tiny_clip
from streams.image_stage import IMAGE_COLUMN, image_column
from streams.poll_batch import pack, spans_of, unpack
from streams.synthetic import PinGenerator
from streams.synthetic_images import render_pin_image
from tests.unit.encoder.test_embedder import parsed_poll


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    threads = torch.get_num_threads()
    yield build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")
    torch.set_num_threads(threads)  # the Embedder sets the process-wide count


def clip_config(folder: Path, image_weight: float = 1.0) -> ModelConfig:
    return ModelConfig(kind="clip", name=str(folder), device="cpu", image_weight=image_weight)


def with_images(poll: pa.Table) -> tuple[pa.Table, np.ndarray, list[int]]:
    """The poll with an image column as the image stage adds it: every other upsert pictured."""
    records = unpack(poll)
    texts = records.column("text").to_pylist()
    pictured = [i for i, text in enumerate(texts) if text is not None][::2]
    pins = PinGenerator(seed=3).pins(len(pictured))
    pixels: list[np.ndarray | None] = [None] * records.num_rows
    for i, pin in zip(pictured, pins, strict=True):
        pixels[i] = np.asarray(render_pin_image(pin, size=TINY_IMAGE_SIZE).convert("RGB"))
    images = np.stack([pixels[i] for i in pictured])
    column = image_column(pixels, TINY_IMAGE_SIZE)
    return pack(records.append_column(IMAGE_COLUMN, column), spans_of(poll)), images, pictured


def vectors_of(table: pa.Table) -> list[np.ndarray | None]:
    return [
        None if v is None else np.asarray(v, np.float32) for v in table.column("vector").to_pylist()
    ]


@pytest.mark.parametrize("image_weight", [1.0, 0.5])
def test_pictured_pins_get_their_images_vector_and_the_rest_their_texts(
    folder: Path, image_weight: float
) -> None:
    poll, images, pictured = with_images(parsed_poll())
    flat = unpack(Embedder(clip_config(folder, image_weight))(poll))
    assert IMAGE_COLUMN not in flat.column_names, "pixels stop at the embedder"
    encoder = ClipEncoder(clip_config(folder))
    texts = flat.column("text").to_pylist()
    vectors = vectors_of(flat)
    pictures = dict(zip(pictured, encoder.encode_images(images), strict=True))
    for i, text in enumerate(texts):
        if text is None:
            assert vectors[i] is None
            continue
        (text_vector,) = encoder.encode([text])
        wanted = text_vector
        if i in pictures:
            fused = image_weight * pictures[i] + (1 - image_weight) * text_vector
            wanted = fused / np.linalg.norm(fused)
        np.testing.assert_allclose(vectors[i], wanted, atol=1e-5)
    assert len(pictures) >= 2 and len(pictures) < sum(t is not None for t in texts)
