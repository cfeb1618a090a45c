"""A backfill's generation keeps the deployment's model kind: one space, one dim per index."""

from __future__ import annotations

from pathlib import Path

import pytest

from conf import ConfigError
from conf.config import PinstreamConfig
from encoder.registry import ModelRegistry
from encoder.tiny_clip import build_tiny_clip
from jobs.backfill import generation_config


def test_a_generation_of_another_model_kind_is_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(str(tmp_path / "models"))
    folder = build_tiny_clip(tmp_path / "tiny-clip")
    registry.publish(
        folder, base_model="tiny", data_hash="-", metrics={}, training={}, version="v1"
    )
    registry.publish(
        folder, base_model="tiny", data_hash="-", metrics={}, training={}, version="v2"
    )
    text = PinstreamConfig().with_value("model.registry", registry.root)
    assert generation_config(text, "base", "again").model.kind == "text"
    with pytest.raises(
        ValueError, match=r"'v1' is a clip model and this config serves model\.kind"
    ):
        generation_config(text, "v1", None)
    visual = text.with_values({"model.name": "v1", "model.kind": "clip", "shards.dim": 128})
    generation = generation_config(visual, "v2", None)
    assert (generation.model.kind, generation.model.name, generation.model.generation) == (
        "clip",
        "v2",
        "v2",
    )
    with pytest.raises(ConfigError, match="kind clip needs a CLIP model folder"):
        generation_config(visual, "base", "text-again")
