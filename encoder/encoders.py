"""The encoder of a model config: a text encoder, or a CLIP-format dual encoder."""

from __future__ import annotations

from typing import TypeGuard

from conf.config import ModelConfig
from encoder.clip_encoder import ClipEncoder
from encoder.text_encoder import TextEncoder

Encoder = TextEncoder | ClipEncoder


def load_encoder(model: ModelConfig) -> Encoder:
    """The encoder `model.kind` names, loaded from `model.name`."""
    return ClipEncoder(model) if model.kind == "clip" else TextEncoder(model)


def has_image_tower(encoder: Encoder) -> TypeGuard[ClipEncoder]:
    """Whether `encoder` embeds images too."""
    return isinstance(encoder, ClipEncoder)
