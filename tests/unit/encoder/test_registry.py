"""The model registry: round trip, checksums refused, production pointer and its history."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conf.config import ModelConfig, load_config
from encoder.engagement import data_hash
from encoder.exceptions import CorruptModel, ModelNotFound, RegistryError
from encoder.registry import BASE, PRODUCTION, ModelRegistry
from encoder.text_encoder import TextEncoder, model_path
from tests.unit.encoder.conftest import TinyRun

TEXTS = ["distressed oak armchair", "Board: Farmhouse Kitchen. Tags: shiplap"]


def fake_model(folder: Path, weights: bytes = b"weights") -> Path:
    """A folder the registry accepts: it holds files, never loads them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.pt").write_bytes(weights)
    return folder


def publish_fake(registry: ModelRegistry, tmp_path: Path, name: str = "m") -> str:
    folder = fake_model(tmp_path / name, weights=name.encode() * 100)
    return registry.publish(
        folder, base_model="base-x", data_hash="d" * 64, metrics={}, training={}
    ).version


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(str(tmp_path / "models"), cache_dir=tmp_path / "cache")


def test_a_published_version_round_trips_into_an_encoder(
    tiny_run: TinyRun, registry: ModelRegistry
) -> None:
    metrics = {"training": tiny_run.stats.as_dict()}
    version = registry.publish(
        tiny_run.folder,
        base_model="all-MiniLM-L6-v2",
        data_hash=data_hash(tiny_run.pairs),
        metrics=metrics,
        training={"steps": 3},
    )
    assert version.version == "ft-0001"
    assert (version.base_model, version.metrics, version.training) == (
        "all-MiniLM-L6-v2",
        metrics,
        {"steps": 3},
    )
    assert version.data_hash == data_hash(tiny_run.pairs) and version.created_ms > 0
    for path in tiny_run.folder.iterdir():
        entry = version.files[path.name]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [v.version for v in registry.versions()] == ["ft-0001"]

    local = registry.materialise("ft-0001")
    assert local.name == "ft-0001" and registry.materialise("ft-0001") == local
    loaded = TextEncoder(ModelConfig(name=str(local), device="cpu"))
    original = TextEncoder(ModelConfig(name=str(tiny_run.folder), device="cpu"))
    assert loaded.model_id == "ft-0001"
    np.testing.assert_array_equal(loaded.encode(TEXTS), original.encode(TEXTS))
    base = TextEncoder(ModelConfig(device="cpu"))
    assert not np.allclose(loaded.encode(TEXTS), base.encode(TEXTS), atol=1e-4)


def test_model_config_names_a_version_a_folder_or_base(
    tmp_path: Path, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINSTREAM_MODEL_CACHE", str(tmp_path / "env-cache"))
    version = publish_fake(registry, tmp_path)
    path = model_path(ModelConfig(name=version, registry=registry.root))
    assert path is not None and Path(path).parent.parent == tmp_path / "env-cache"
    assert (Path(path) / "model.pt").read_bytes() == b"m" * 100
    assert model_path(ModelConfig(name="base")) is None
    assert model_path(ModelConfig(name="/models/ft-7")) == "/models/ft-7"
    with pytest.raises(ModelNotFound):
        model_path(ModelConfig(name="ft-0099", registry=registry.root))


def test_versions_are_numbered_and_never_overwritten(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    assert publish_fake(registry, tmp_path, "a") == "ft-0001"
    assert publish_fake(registry, tmp_path, "b") == "ft-0002"
    folder = fake_model(tmp_path / "c")
    with pytest.raises(RegistryError, match="already exists"):
        registry.publish(
            folder, base_model="x", data_hash="", metrics={}, training={}, version="ft-0002"
        )
    with pytest.raises(RegistryError, match="packaged"):
        registry.publish(
            folder, base_model="x", data_hash="", metrics={}, training={}, version=BASE
        )
    with pytest.raises(ValueError, match="version id"):
        registry.publish(
            folder, base_model="x", data_hash="", metrics={}, training={}, version="A/B"
        )
    assert registry.get("ft-0002").files["model.pt"]["bytes"] == 100


def test_a_damaged_file_is_refused_never_loaded(tmp_path: Path, registry: ModelRegistry) -> None:
    version = publish_fake(registry, tmp_path)
    weights = Path(registry.uri(version)) / "model.pt"
    weights.write_bytes(b"x" + weights.read_bytes()[1:])  # same size, one byte flipped
    with pytest.raises(CorruptModel, match="checksum"):
        registry.materialise(version)
    with pytest.raises(CorruptModel):
        registry.verify(version)
    with pytest.raises(CorruptModel):
        registry.promote(version)
    assert registry.production().version == BASE
    assert not list((tmp_path / "cache").rglob("model.pt"))  # nothing half-copied left behind


def test_a_damaged_cached_copy_is_fetched_again(tmp_path: Path, registry: ModelRegistry) -> None:
    version = publish_fake(registry, tmp_path)
    local = registry.materialise(version)
    (local / "model.pt").write_bytes(b"tampered")
    assert registry.materialise(version) == local
    assert (local / "model.pt").read_bytes() == b"m" * 100


def test_partial_and_damaged_versions_are_not_listed(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    good = publish_fake(registry, tmp_path, "a")
    partial = publish_fake(registry, tmp_path, "b")
    (Path(registry.uri(partial)) / "manifest.json").unlink()  # the writer died before it
    damaged = publish_fake(registry, tmp_path, "c")
    manifest = Path(registry.uri(damaged)) / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"base-x"', '"base-y"'))
    assert [v.version for v in registry.versions()] == [good]
    with pytest.raises(ModelNotFound):
        registry.get(partial)
    with pytest.raises(CorruptModel, match="checksum"):
        registry.get(damaged)


def test_promote_and_rollback_move_production_and_keep_history(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    first, second = publish_fake(registry, tmp_path, "a"), publish_fake(registry, tmp_path, "b")
    assert registry.production().version == BASE
    assert registry.promote(first).version == first
    assert registry.promote(first).version == first  # already production: nothing recorded
    assert registry.promote(second).version == second
    assert registry.production().stack == (first, second)
    assert registry.rollback().version == first
    assert registry.rollback().version == BASE
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    history = registry.production().history
    assert [(e["action"], e["version"], e["previous"]) for e in history] == [
        ("promote", first, BASE),
        ("promote", second, first),
        ("rollback", first, second),
        ("rollback", BASE, first),
    ]
    assert all(e["at_ms"] > 0 for e in history)
    with pytest.raises(ModelNotFound):
        registry.promote("ft-0042")


def test_a_damaged_production_pointer_is_an_error(registry: ModelRegistry, tmp_path: Path) -> None:
    registry.promote(publish_fake(registry, tmp_path))
    pointer = Path(registry.root) / PRODUCTION
    pointer.write_text(json.dumps({"stack": ["../evil"], "history": []}))
    with pytest.raises(RegistryError, match="damaged"):
        registry.production()


def test_the_local_config_keeps_models_under_the_storage_root() -> None:
    cfg = load_config()
    assert cfg.model.registry == f"{cfg.storage.root}/models"
