"""The fine-tuning job: one Ray task trains, evaluates and publishes a model version.

The task runs on one worker, with a GPU when the cluster has one (CPU otherwise): it
fine-tunes the base encoder on the engagement training pairs, scores the result on the
held-out and new-trend sets, and publishes it to the model registry with its metrics and
training-data hash. Progress reports stream back to the caller while it runs (a Ray
streaming generator), so the command shows step, loss and throughput as they happen.
"""

from __future__ import annotations

import dataclasses
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray

from conf.config import ModelConfig, PinstreamConfig
from encoder.engagement import EngagementConfig, data_hash, heldout_set, training_pairs, trend_set
from encoder.evaluation import EvalConfig, evaluate
from encoder.finetune import FinetuneConfig, Progress, finetune
from encoder.registry import ModelRegistry, ModelVersion
from encoder.text_encoder import BASE_MODEL_ID, TextEncoder
from jobs.stack import start_ray

Report = Progress | str


def train_evaluate_publish(
    registry: ModelRegistry,
    config: FinetuneConfig,
    engagement: EngagementConfig,
    evaluation: EvalConfig | None,
    version: str | None = None,
    report: Callable[[Report], None] = lambda _: None,
) -> ModelVersion:
    """Fine-tune, score on the held-out and new-trend sets (unless evaluation is None), publish."""
    started = time.perf_counter()
    pairs = training_pairs(engagement)
    report(
        f"training on {len(pairs)} engagement pairs, {config.steps} steps of {config.batch_size}"
    )
    with tempfile.TemporaryDirectory(prefix="pinstream-finetune-") as scratch:
        folder = Path(scratch) / "model"
        stats = finetune(pairs, config, folder, progress=report)
        metrics: dict[str, Any] = {"training": stats.as_dict()}
        if evaluation is not None:
            report("evaluating on the held-out and new-trend sets")
            encoder = TextEncoder(ModelConfig(name=str(folder), device=config.device))
            sets = [heldout_set(engagement), trend_set(engagement)]
            metrics["eval"] = evaluate(encoder.encode, sets, evaluation)
            metrics["eval_config"] = dataclasses.asdict(evaluation)
        metrics["job_seconds"] = time.perf_counter() - started
        return registry.publish(
            folder,
            base_model=BASE_MODEL_ID,
            data_hash=data_hash(pairs),
            metrics=metrics,
            training={
                "finetune": dataclasses.asdict(config),
                "engagement": dataclasses.asdict(engagement),
            },
            version=version,
        )


def _job(
    registry_root: str,
    config: FinetuneConfig,
    engagement: EngagementConfig,
    evaluation: EvalConfig | None,
    version: str | None,
) -> Iterator[Report | ModelVersion]:
    """The Ray task body: the work runs in a thread, its reports are yielded as they come."""
    reports: queue.Queue[Report | None] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["version"] = train_evaluate_publish(
                ModelRegistry(registry_root), config, engagement, evaluation, version, reports.put
            )
        except BaseException as exc:  # re-raised in the task, so the caller sees it
            outcome["error"] = exc
        finally:
            reports.put(None)

    worker = threading.Thread(target=work, name="finetune", daemon=True)
    worker.start()
    while (item := reports.get()) is not None:
        yield item
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    yield outcome["version"]


def run_finetune_job(
    cfg: PinstreamConfig,
    config: FinetuneConfig,
    engagement: EngagementConfig,
    evaluation: EvalConfig | None,
    version: str | None = None,
    report: Callable[[Report], None] = print,
) -> ModelVersion:
    """Run the job as a Ray task (num_gpus=1 where the cluster has a GPU) and wait for it."""
    start_ray(cfg)
    registry = ModelRegistry(cfg.model.registry)  # absolute here: the worker may sit elsewhere
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_job)
    report(f"fine-tuning on {'a GPU' if gpus else 'CPU'} worker, registry {registry.root}")
    result: ModelVersion | None = None
    refs: Any = task.remote(registry.root, config, engagement, evaluation, version)
    for ref in refs:  # a streaming generator: one ref per yielded report, as it comes
        item = ray.get(ref)
        if isinstance(item, ModelVersion):
            result = item
        else:
            report(item)
    assert result is not None, "the finetune task ended without a version"
    return result
