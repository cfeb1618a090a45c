"""The CLIP-format dual encoder, on the tiny random CLIP: one space for texts and images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conf.config import ModelConfig
from encoder.clip_encoder import ClipEncoder
from encoder.encoders import has_image_tower, load_encoder
from encoder.exceptions import EncoderError
from encoder.model_folder import base_model_folder
from encoder.registry import ModelRegistry
from encoder.tiny_clip import TINY_DIM, TINY_IMAGE_SIZE, build_tiny_clip


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def clip(folder: Path, **changes: object) -> ClipEncoder:
    encoder = load_encoder(ModelConfig(kind="clip", name=str(folder), device="cpu", **changes))
    assert isinstance(encoder, ClipEncoder) and has_image_tower(encoder)
    return encoder


def images(n: int, size: int = TINY_IMAGE_SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_texts_and_images_land_in_one_space_of_unit_vectors(folder: Path) -> None:
    encoder = clip(folder)
    texts = encoder.encode(["walnut coffee table", "rattan chair", "brass lamp"])
    pictures = encoder.encode_images(images(4))
    assert texts.shape == (3, TINY_DIM) and pictures.shape == (4, TINY_DIM) == (4, encoder.dim)
    assert texts.dtype == pictures.dtype == np.float32 and texts.flags.c_contiguous
    for vectors in (texts, pictures):
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(pictures[0], pictures[1]), "different images, different vectors"


def test_batches_and_image_sizes_do_not_change_a_vector(folder: Path) -> None:
    whole = clip(folder).encode_images(images(5))
    in_twos = clip(folder, batch_size=2).encode_images(images(5))
    np.testing.assert_allclose(whole, in_twos, atol=1e-5)
    larger = clip(folder).encode_images(images(2, size=64))  # resized to the model's 32
    assert larger.shape == (2, TINY_DIM)
    texts = ["oak bookshelf", "a longer text about a linen sofa in a bright room"]
    np.testing.assert_allclose(
        clip(folder).encode(texts), clip(folder, batch_size=1).encode(texts), atol=1e-5
    )


def test_a_published_clip_loads_from_the_registry(folder: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    registry.publish(folder, base_model="tiny-clip", data_hash="none", metrics={}, training={})
    published = ModelConfig(kind="clip", name="ft-0001", registry=str(tmp_path / "models"))
    np.testing.assert_allclose(
        load_encoder(published).encode_images(images(2)),
        clip(folder).encode_images(images(2)),
        atol=1e-6,
    )


def test_wrong_inputs_and_models_are_refused(folder: Path) -> None:
    encoder = clip(folder)
    with pytest.raises(EncoderError, match=r"images must be \(n, s, s, 3\) uint8"):
        encoder.encode_images(images(2).astype(np.float32))
    with pytest.raises(EncoderError, match="a single str"):
        encoder.encode("one text")  # type: ignore[arg-type]
    assert encoder.encode([]).shape == (0, TINY_DIM)
    with pytest.raises(EncoderError, match="not a CLIP-format model"):
        ClipEncoder(ModelConfig(kind="clip", name=str(base_model_folder()), device="cpu"))
    with pytest.raises(ValueError, match="kind clip needs a CLIP model folder"):
        ModelConfig(kind="clip")
