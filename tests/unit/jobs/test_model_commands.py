"""`pinstream finetune | eval | models`: flags reach the job; the registry commands work."""

from pathlib import Path
from typing import Any

import pytest

import jobs.finetune
from encoder.finetune import FinetuneConfig
from encoder.registry import ModelRegistry, ModelVersion
from jobs.cli import _parser, main


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"model:\n  registry: {tmp_path / 'models'}\n")
    return path


def publish(tmp_path: Path, name: str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    metrics = {"eval": {"heldout": {"boards": {"recall@10": 0.5, "ndcg@10": 0.4}}}}
    registry = ModelRegistry(str(tmp_path / "models"))
    return registry.publish(
        folder, base_model="b", data_hash="0" * 64, metrics=metrics, training={}
    ).version


def test_finetune_flags_become_the_training_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def fake_job(cfg, config, engagement, evaluation, version, report) -> ModelVersion:  # type: ignore[no-untyped-def]
        seen.update(config=config, evaluation=evaluation, version=version)
        report("step 1/5 ...")
        training = {"steps": 5, "train_seconds": 1.0, "pairs_per_s": 2.0}
        return ModelVersion("ft-0009", "u", "b", "h", {"training": training}, {}, 1, {})

    monkeypatch.setattr(jobs.finetune, "run_finetune_job", fake_job)
    argv = ["--config", str(config_file(tmp_path)), "finetune", "--steps", "5", "--seed", "3"]
    assert main([*argv, "--learning-rate", "3e-5", "--no-eval", "--version", "mine"]) == 0
    assert seen["config"] == FinetuneConfig(steps=5, seed=3, learning_rate=3e-5)
    assert seen["evaluation"] is None and seen["version"] == "mine"
    out = capsys.readouterr().out
    assert "step 1/5" in out and "published ft-0009" in out


def test_eval_needs_a_model_and_compares_with_base_by_default() -> None:
    args = _parser().parse_args(["eval", "--model", "ft-0001"])
    assert (args.model, args.against) == ("ft-0001", "base")
    with pytest.raises(SystemExit):
        _parser().parse_args(["eval"])


def test_models_list_promote_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(config_file(tmp_path))
    first, second = publish(tmp_path, "a"), publish(tmp_path, "b")
    assert main(["--config", config, "models", "promote", first]) == 0
    assert main(["--config", config, "models", "promote", second]) == 0
    assert main(["--config", config, "models", "rollback"]) == 0
    assert "production: ft-0001 (rolled back)" in capsys.readouterr().out
    assert main(["--config", config, "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "2 version(s), production ft-0001" in out
    assert "* ft-0001" in out and "heldout boards r@10 0.500" in out
    assert "rollback ft-0001 (was ft-0002)" in out


def test_models_errors_are_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(config_file(tmp_path))
    assert main(["--config", config, "models", "promote", "ft-0404"]) == 2
    assert "no model version ft-0404" in capsys.readouterr().err
    assert main(["--config", config, "models", "rollback"]) == 2
    assert "nothing to roll back" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["models"])  # an action is required
