"""Serve's own autoscaler scales a shard deployment from 1 to 2 replicas under load and back.

The shard deployment is the real one (its log replayed before a new replica serves),
with second-scale autoscaling delays and a tiny target so a light load is enough on
two shared cores. The query encoder is a fake: only vector queries are sent.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from ray import serve

from conf.config import PinstreamConfig
from serve.app import shard_scaling
from serve.ingress import Ingress
from serve.shard_replica import ShardReplica
from streams.embeddings_log import EmbeddingsLogWriter
from streams.local_broker import LocalBroker
from streams.synthetic import PinGenerator
from tests.integration.conftest import unique_config
from tests.integration.serve.conftest import deployed
from tests.integration.serve.fakes import FailingEncoder
from tests.integration.serve.test_app import log_rows
from tests.waiting import wait_until

COUNT = 60
TINY = {"num_cpus": 0.01}


def scaling_config(bootstrap: str) -> PinstreamConfig:
    cfg = unique_config(bootstrap, shards=1).with_values(
        {
            "serve.app_name": f"scale-{uuid.uuid4().hex[:8]}",
            "serve.shard_autoscaling": {
                "min_replicas": 1,
                "max_replicas": 2,
                "target_ongoing_requests": 0.05,
                "upscale_delay_s": 1.0,
                "downscale_delay_s": 2.0,
                "look_back_period_s": 2.0,
                "metrics_interval_s": 0.5,
            },
        }
    )
    return cfg


@pytest.fixture(scope="module")
def app(broker: LocalBroker, serve_url: str) -> Iterator[tuple[PinstreamConfig, str]]:
    cfg = scaling_config(broker.bootstrap)
    pins = PinGenerator(seed=5, id_prefix="as").pins(COUNT)
    vectors = np.random.default_rng(0).standard_normal((COUNT, cfg.shards.dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    with EmbeddingsLogWriter(cfg.broker.bootstrap, cfg.topics.embeddings, 1) as writer:
        writer.write(log_rows(cfg, pins, vectors, version=1))
        writer.flush()
    shard = serve.deployment(
        name="shard-0",
        max_ongoing_requests=cfg.serve.shard_max_ongoing_requests,
        ray_actor_options={"num_cpus": cfg.serve.shard_num_cpus},
        **shard_scaling(cfg.serve),
    )(ShardReplica).bind(cfg, 0)
    encoder = serve.deployment(name="query-encoder", ray_actor_options=TINY)(FailingEncoder)
    ingress = serve.deployment(name="ingress", ray_actor_options=TINY)(serve.ingress()(Ingress))
    with deployed(cfg, ingress.bind(cfg, encoder.bind(), [shard]), serve_url) as url:
        yield cfg, url


def running_replicas(cfg: PinstreamConfig) -> int:
    deployment = serve.status().applications[cfg.serve.app_name].deployments["shard-0"]
    return deployment.replica_states.get("RUNNING", 0)


def test_a_shard_scales_to_two_replicas_under_load_and_back(
    app: tuple[PinstreamConfig, str],
) -> None:
    cfg, url = app
    assert running_replicas(cfg) == 1
    stop = threading.Event()
    answers: list[tuple[int, bool]] = []
    body = {"vector": [0.05] * cfg.shards.dim, "k": 50}

    def load() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(f"{url}/v1/search", json=body, timeout=30)
                answers.append((response.status_code, response.json().get("partial")))

    workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        started = time.monotonic()
        wait_until(lambda: running_replicas(cfg) == 2, timeout_s=45, what="2 shard replicas")
        scaled_up_after = time.monotonic() - started
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    wait_until(lambda: running_replicas(cfg) == 1, timeout_s=45, what="back to 1 shard replica")
    # A new replica serves only once caught up: every answer was full, never partial.
    assert answers and all(answer == (200, False) for answer in answers), set(answers)
    print(f"scaled up after {scaled_up_after:.1f}s of load, {len(answers)} queries")
