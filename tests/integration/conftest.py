"""One broker and one Ray per session; unique topic and group names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import ray
from ray import serve

from conf.config import PinstreamConfig, load_config
from streams.kafka_io import ensure_topics
from streams.local_broker import LocalBroker, free_loopback_port


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    with LocalBroker() as running:
        yield running


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def unique_config(bootstrap: str, shards: int = 2, partitions: int = 3) -> PinstreamConfig:
    """The embedded default on `bootstrap`, with topics and group that no other test uses."""
    tag = uuid.uuid4().hex[:8]
    cfg = load_config()
    for key, value in {
        "broker.bootstrap": bootstrap,
        "topics.pins": f"pins-{tag}",
        "topics.dlq": f"pins-{tag}.dlq",
        "topics.embeddings": f"pin-embeddings-{tag}",
        "topics.pins_partitions": partitions,
        "shards.count": shards,
        "ingest.consumer_group": f"ingest-{tag}",
        "serve.app_name": f"pinstream-{tag}",
    }.items():
        cfg = cfg.with_value(key, value)
    ensure_topics(
        bootstrap,
        {cfg.topics.pins: partitions, cfg.topics.dlq: 1, cfg.topics.embeddings: shards},
    )
    return cfg


@pytest.fixture(scope="session")
def serve_url(ray_session) -> Iterator[str]:
    """Serve's HTTP proxy for the session; each app mounts at its own route prefix."""
    port = free_loopback_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


@pytest.fixture
def cfg(broker: LocalBroker) -> PinstreamConfig:
    return unique_config(broker.bootstrap)
