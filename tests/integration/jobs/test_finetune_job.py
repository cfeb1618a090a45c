"""The fine-tuning job as a Ray task: progress streams back, a scored version is published."""

from pathlib import Path

from conf.config import PinstreamConfig
from encoder.engagement import EngagementConfig
from encoder.evaluation import EvalConfig
from encoder.finetune import FinetuneConfig, Progress
from encoder.registry import ModelRegistry
from jobs.finetune import run_finetune_job

TINY_DATA = EngagementConfig(
    train_pins=120,
    train_queries=60,
    heldout_pins=80,
    heldout_queries=10,
    trend_pins=40,
    trend_distractors=40,
    trend_queries=5,
)


def test_the_job_streams_progress_and_publishes_a_scored_version(
    ray_session: None, tmp_path: Path
) -> None:
    cfg = PinstreamConfig().with_value("model.registry", str(tmp_path / "models"))
    reports: list[object] = []
    config = FinetuneConfig(
        steps=2, batch_size=4, max_seq_length=32, warmup_steps=1, log_every=1, threads=1
    )

    version = run_finetune_job(cfg, config, TINY_DATA, EvalConfig(k=5), report=reports.append)

    assert [r.step for r in reports if isinstance(r, Progress)] == [1, 2]
    assert version.version == "ft-0001"
    assert version.metrics["training"]["steps"] == 2
    assert set(version.metrics["eval"]) == {"heldout", "new-trend"}
    assert "recall@5" in version.metrics["eval"]["heldout"]["boards"]
    assert version.training["engagement"]["train_pins"] == 120
    registry = ModelRegistry(cfg.model.registry)
    assert [v.version for v in registry.versions()] == ["ft-0001"]
    assert (registry.materialise("ft-0001") / "model.pt").is_file()
