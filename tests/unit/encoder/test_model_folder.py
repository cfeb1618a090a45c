"""Model folders: fine-tuned weights load as a plain state_dict, never as arbitrary pickle."""

import shutil
from pathlib import Path

import pytest
import torch

from encoder.exceptions import EncoderError
from encoder.model_folder import TOKENIZER_FILES, WEIGHTS_FILE, base_model_folder, load_model

PWNED: list[str] = []


class Payload:
    """Unpickling this would run code: weights_only loading must refuse it."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (PWNED.append, ("unpickled",))


def folder_with_weights(tmp_path: Path, weights: object) -> Path:
    base = base_model_folder()
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", *TOKENIZER_FILES):
        shutil.copyfile(base / name, folder / name)
    torch.save(weights, folder / WEIGHTS_FILE)
    return folder


def test_weights_with_a_pickled_object_are_refused(tmp_path: Path) -> None:
    folder = folder_with_weights(tmp_path, {"embeddings.word_embeddings.weight": Payload()})
    with pytest.raises(EncoderError, match="cannot load"):
        load_model(folder)
    assert PWNED == []


def test_weights_that_miss_a_tensor_are_refused(tmp_path: Path) -> None:
    _, model = load_model(base_model_folder())
    state = model.state_dict()
    state.pop("pooler.dense.weight")
    with pytest.raises(EncoderError, match=r"pooler\.dense\.weight"):
        load_model(folder_with_weights(tmp_path, state))
