"""Contrastive fine-tuning of the encoder on engagement pairs (InfoNCE, in-batch negatives).

Each step embeds a batch of (anchor, positive) pairs with the pooling the TextEncoder
uses, and trains every anchor to pick its own positive among the batch's positives (and
every positive its anchor), at inverse temperature `scale`. A batch holds one kind of
pair and never two pairs of one intent (`Pair.group`): those would be false negatives.
The embeddings and the lowest `frozen_layers` transformer layers stay fixed, which keeps
a CPU step cheap and the model close to the base where engagement says nothing.
"""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from encoder.engagement import Pair
from encoder.model_folder import base_model_folder, load_model, save_model
from encoder.text_encoder import mean_pool, resolve_device


@dataclass(frozen=True)
class FinetuneConfig:
    """Training settings; the defaults take a few minutes on two CPU cores."""

    steps: int = 150
    batch_size: int = 32
    learning_rate: float = 1e-4
    warmup_steps: int = 15
    weight_decay: float = 0.01
    scale: float = 20.0
    max_seq_length: int = 96
    frozen_layers: int = 2
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_seq_length", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"finetune.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("finetune.batch_size must be >= 2: in-batch negatives need company")
        for name in ("warmup_steps", "weight_decay", "frozen_layers", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"finetune.{name} must be >= 0, got {getattr(self, name)}")
        if not self.learning_rate > 0 or not self.scale > 0:
            raise ValueError("finetune.learning_rate and finetune.scale must be > 0")


@dataclass(frozen=True)
class Progress:
    """One progress report: the mean loss of the steps since the previous report."""

    step: int
    steps: int
    loss: float
    pairs_per_s: float
    elapsed_s: float

    def __str__(self) -> str:
        return (
            f"step {self.step}/{self.steps}  loss {self.loss:.4f}  "
            f"{self.pairs_per_s:.1f} pairs/s  {self.elapsed_s:.0f} s"
        )


@dataclass(frozen=True)
class TrainingStats:
    """What a run did, for the registry's metrics."""

    steps: int
    pairs_seen: int
    first_loss: float
    final_loss: float
    train_seconds: float
    pairs_per_s: float
    device: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def info_nce(anchors: torch.Tensor, positives: torch.Tensor, scale: float) -> torch.Tensor:
    """Symmetric InfoNCE of unit vectors: row i of either side is the positive of row i of the
    other, every other row a negative."""
    n, d = anchors.shape
    assert positives.shape == (n, d), (anchors.shape, positives.shape)
    logits = scale * anchors @ positives.T
    labels = torch.arange(n, device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def contrastive_batches(pairs: Sequence[Pair], batch_size: int, seed: int) -> Iterator[list[Pair]]:
    """Endless seeded batches of `batch_size` pairs of one kind and distinct groups."""
    by_kind: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_kind[pair.kind].append(pair)
    rng = random.Random(seed)
    while True:
        epoch: list[list[Pair]] = []
        for kind_pairs in by_kind.values():
            epoch.extend(
                _distinct_group_batches(rng.sample(kind_pairs, len(kind_pairs)), batch_size)
            )
        if not epoch:
            raise ValueError(f"no batch of {batch_size} pairs with distinct groups can be made")
        rng.shuffle(epoch)
        yield from epoch


def finetune(
    pairs: Sequence[Pair],
    config: FinetuneConfig,
    out_dir: Path,
    base_dir: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> TrainingStats:
    """Train from the model in `base_dir` (default: the packaged base) and save to `out_dir`."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    device = resolve_device(config.device)
    base = base_dir if base_dir is not None else base_model_folder()
    tokenizer, model = load_model(base)
    model.to(device).train()
    trainable = _freeze(model, config.frozen_layers)
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_then_linear(config))

    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=config.max_seq_length,
            return_tensors="pt",
        ).to(device)
        return mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])

    batches = contrastive_batches(pairs, config.batch_size, config.seed)
    started = last_report = time.perf_counter()
    losses: list[float] = []
    first_loss = window_loss = 0.0
    window_pairs = pairs_seen = 0
    for step in range(1, config.steps + 1):
        batch = next(batches)
        loss = info_nce(
            embed([p.anchor for p in batch]), embed([p.positive for p in batch]), config.scale
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        window_pairs += len(batch)
        pairs_seen += len(batch)
        if step % config.log_every == 0 or step == config.steps:
            now = time.perf_counter()
            window_loss = sum(losses) / len(losses)
            if not first_loss:
                first_loss = window_loss
            if progress is not None:
                progress(
                    Progress(
                        step,
                        config.steps,
                        window_loss,
                        window_pairs / (now - last_report),
                        now - started,
                    )
                )
            losses, window_pairs, last_report = [], 0, now
    seconds = time.perf_counter() - started
    model.eval()
    save_model(model, base, out_dir)
    return TrainingStats(
        steps=config.steps,
        pairs_seen=pairs_seen,
        first_loss=first_loss,
        final_loss=window_loss,
        train_seconds=seconds,
        pairs_per_s=pairs_seen / seconds,
        device=str(device),
    )


def _freeze(model: Any, frozen_layers: int) -> list[torch.nn.Parameter]:
    """Freeze the embeddings and the lowest layers; return the parameters left to train."""
    layers = model.encoder.layer
    if frozen_layers > len(layers):
        raise ValueError(f"frozen_layers {frozen_layers} > the model's {len(layers)} layers")
    for module in (model.embeddings, *layers[:frozen_layers]):
        for parameter in module.parameters():
            parameter.requires_grad = False
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def _warmup_then_linear(config: FinetuneConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        remaining = config.steps - step
        return max(0.0, remaining / max(1, config.steps - config.warmup_steps))

    return factor


def _distinct_group_batches(pairs: Sequence[Pair], batch_size: int) -> list[list[Pair]]:
    """Fill batches in order, each pair going to the first open batch without its group."""
    open_batches: list[tuple[list[Pair], set[str]]] = []
    full: list[list[Pair]] = []
    for pair in pairs:
        for batch, groups in open_batches:
            if pair.group not in groups:
                batch.append(pair)
                groups.add(pair.group)
                break
        else:
            open_batches.append(([pair], {pair.group}))
            continue
        if len(batch) == batch_size:
            full.append(batch)
            open_batches = [entry for entry in open_batches if entry[0] is not batch]
    return full  # incomplete batches are dropped: every step sees batch_size pairs
