"""`pinstream finetune`, `pinstream eval` and `pinstream models`: the encoder's lifecycle."""

from __future__ import annotations

import argparse
import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

from conf.config import PinstreamConfig
from encoder.finetune import FinetuneConfig
from encoder.registry import BASE, ModelRegistry, ModelVersion

_FINETUNE_FLAGS = {  # flag -> (FinetuneConfig field, type)
    "--steps": ("steps", int),
    "--batch-size": ("batch_size", int),
    "--learning-rate": ("learning_rate", float),
    "--frozen-layers": ("frozen_layers", int),
    "--max-seq-length": ("max_seq_length", int),
    "--seed": ("seed", int),
    "--threads": ("threads", int),
    "--device": ("device", str),
}


def add_model_parsers(commands: Any) -> None:
    """Add the finetune, eval and models commands to the `pinstream` parser."""
    defaults = FinetuneConfig()
    tune = commands.add_parser(
        "finetune",
        help="fine-tune the encoder on engagement data (a Ray task) and publish a model version",
    )
    for flag, (name, kind) in _FINETUNE_FLAGS.items():
        default = getattr(defaults, name)
        tune.add_argument(flag, dest=name, type=kind, default=default, help=f"(default: {default})")
    tune.add_argument("--version", default=None, help="its id (default: the next ft-NNNN)")
    tune.add_argument("--no-eval", action="store_true", help="publish without scoring it")
    tune.set_defaults(run=run_finetune)

    score = commands.add_parser(
        "eval", help="recall@10 / nDCG@10 of a model version against another (default: base)"
    )
    score.add_argument("--model", required=True, help="a registry version, or 'base'")
    score.add_argument("--against", default=BASE, help="the version it is compared with")
    score.set_defaults(run=run_eval)

    models = commands.add_parser("models", help="the model registry: versions and production")
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="versions, their metrics, production and its history")
    promote = actions.add_parser("promote", help="point production at version V")
    promote.add_argument("version")
    actions.add_parser("rollback", help="point production back at its previous version")
    models.set_defaults(run=run_models)


def run_finetune(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    from encoder.engagement import EngagementConfig
    from encoder.evaluation import EvalConfig
    from jobs.finetune import run_finetune_job

    config = FinetuneConfig(**{name: getattr(args, name) for name, _ in _FINETUNE_FLAGS.values()})
    started = time.perf_counter()
    version = run_finetune_job(
        cfg,
        config,
        EngagementConfig(),
        None if args.no_eval else EvalConfig(),
        args.version,
        report=lambda item: print(item, flush=True),
    )
    training = version.metrics["training"]
    print(
        f"published {version.version} at {version.uri}: {training['steps']} steps in "
        f"{training['train_seconds']:.0f} s ({training['pairs_per_s']:.1f} pairs/s), "
        f"job {time.perf_counter() - started:.0f} s"
    )
    if "eval" in version.metrics:
        print(_metrics_lines(version.metrics["eval"]))
    return 0


def run_eval(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    from encoder.engagement import EngagementConfig, heldout_set, trend_set
    from encoder.evaluation import EvalConfig, comparison_table, evaluate
    from encoder.text_encoder import TextEncoder

    started = time.perf_counter()
    engagement, evaluation = EngagementConfig(), EvalConfig()
    sets = [heldout_set(engagement), trend_set(engagement)]
    results = {}
    for name in (args.against, args.model):
        encoder = TextEncoder(dataclasses.replace(cfg.model, name=name))
        results[name] = evaluate(encoder.encode, sets, evaluation)
    print(comparison_table(results[args.against], results[args.model], args.against, args.model))
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


def run_models(cfg: PinstreamConfig, args: argparse.Namespace) -> int:
    registry = ModelRegistry(cfg.model.registry)
    if args.action == "promote":
        production = registry.promote(args.version)
        print(f"production: {production.version}")
    elif args.action == "rollback":
        production = registry.rollback()
        print(f"production: {production.version} (rolled back)")
    else:
        _print_list(registry)
    return 0


def _print_list(registry: ModelRegistry) -> None:
    production = registry.production()
    versions = registry.versions()
    print(f"registry {registry.root}: {len(versions)} version(s), production {production.version}")
    marker = "*" if production.version == BASE else " "
    print(f"{marker} {BASE:<12} the packaged base model")
    for version in versions:
        marker = "*" if version.version == production.version else " "
        print(f"{marker} {_summary(version)}")
    for event in production.history[-10:]:
        print(
            f"  {_when(event['at_ms'])}  {event['action']:<8} {event['version']} "
            f"(was {event['previous']})"
        )


def _summary(version: ModelVersion) -> str:
    parts = [
        f"{version.version:<12}",
        _when(version.created_ms),
        f"from {version.base_model}",
        f"data {version.data_hash[:12]}",
    ]
    heldout = version.metrics.get("eval", {}).get("heldout", {})
    parts += [f"heldout {task} r@10 {scores['recall@10']:.3f}" for task, scores in heldout.items()]
    return "  ".join(parts)


def _metrics_lines(metrics: dict[str, Any]) -> str:
    return "\n".join(
        f"  {set_name:<10} {task:<8} "
        + "  ".join(f"{name} {value:.3f}" for name, value in scores.items() if name != "tasks")
        for set_name, tasks in metrics.items()
        for task, scores in tasks.items()
    )


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
