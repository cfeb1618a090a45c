"""A tiny CLIP-format dual encoder, randomly initialised, for tests and the image demo.

No pretrained CLIP weights ship as a package, and nothing is fetched from a model hub at run
time, so the image path is exercised with this: two transformer layers per tower, 32x32
images in 8x8 patches, the packaged MiniLM's WordPiece tokenizer (its [SEP] ends a text,
which is where the text tower pools). Fine-tuning (`encoder/clip_finetune.py`) gives it
something to find; a real CLIP folder is used the same way (`model.kind: clip`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from encoder.model_folder import base_model_folder, save_model

TINY_IMAGE_SIZE = 32
TINY_DIM = 128


def build_tiny_clip(folder: Path, seed: int = 0, dim: int = TINY_DIM) -> Path:
    """Write a random tiny CLIP model folder (config, weights, tokenizer) to `folder`."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    base = base_model_folder()
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    tower = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
    config = CLIPConfig(
        text_config={
            **tower,
            "num_attention_heads": 2,
            "vocab_size": tokenizer.vocab_size,
            "max_position_embeddings": 64,
            "bos_token_id": tokenizer.cls_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            **tower,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=dim,
    )
    torch.manual_seed(seed)
    save_model(CLIPModel(config).eval(), base, folder)
    return folder
