"""A model fine-tuned for a few steps, shared by the finetune and registry tests."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from encoder.engagement import EngagementConfig, Pair, training_pairs
from encoder.finetune import FinetuneConfig, Progress, TrainingStats, finetune

TINY_DATA = EngagementConfig(train_pins=120, train_queries=60)
TINY_RUN = FinetuneConfig(
    steps=3, batch_size=4, max_seq_length=32, warmup_steps=1, log_every=1, device="cpu", threads=2
)


@dataclass(frozen=True)
class TinyRun:
    folder: Path
    stats: TrainingStats
    pairs: list[Pair]
    reports: list[Progress]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyRun]:
    threads = torch.get_num_threads()
    pairs = training_pairs(TINY_DATA)
    reports: list[Progress] = []
    folder = tmp_path_factory.mktemp("tiny") / "model"
    stats = finetune(pairs, TINY_RUN, folder, progress=reports.append)
    yield TinyRun(folder, stats, pairs, reports)
    torch.set_num_threads(threads)
