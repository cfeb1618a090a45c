"""One broker and one Ray per session; unique topic and group names per test."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator

import pytest
import ray
from ray import serve

from conf.config import PinstreamConfig, load_config
from jobs.stack import create_topics
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
    cfg = (
        load_config()
        .with_value("broker.bootstrap", bootstrap)
        .with_value("topics.pins_partitions", partitions)
        .with_value("shards.count", shards)
        .with_value("storage.root", tempfile.mkdtemp(prefix="pinstream-test-"))
        .namespaced(uuid.uuid4().hex[:8])
    )
    create_topics(cfg)
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
