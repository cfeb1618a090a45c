"""One broker and one Ray per session; unique topic and group names per test."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator

import pytest
import ray
from ray import serve

from conf.config import PinstreamConfig, ServeConfig, load_config
from encoder.text_encoder import TextEncoder
from jobs.stack import create_topics
from serve.data_path import use_serve_environment
from serve.grpc_api import grpc_options
from streams.local_broker import LocalBroker, free_loopback_port
from tests.integration.tcp_proxy import TcpProxy, broker_behind_proxy


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    with LocalBroker() as running:
        yield running


@pytest.fixture(scope="session")
def proxied_broker() -> Iterator[tuple[TcpProxy, LocalBroker]]:
    """A second broker, behind a loopback TCP proxy (see tests/integration/tcp_proxy.py)."""
    with broker_behind_proxy() as running:
        yield running


# Client deadlines of seconds, so an outage longer than the delivery timeout lasts seconds.
SHORT_TIMEOUTS = {
    "broker.request_timeout_ms": 2000,
    "broker.delivery_timeout_ms": 3000,
    "broker.close_timeout_s": 1.0,
    "ingest.retry_backoff_s": 0.5,
    "ingest.retry_backoff_max_s": 2.0,
}


@pytest.fixture
def faulty(proxied_broker: tuple[TcpProxy, LocalBroker]) -> tuple[TcpProxy, PinstreamConfig]:
    """The proxy, healed, and a config of unique names on the broker behind it."""
    proxy, broker = proxied_broker
    proxy.heal()
    return proxy, unique_config(broker.bootstrap).with_values(SHORT_TIMEOUTS)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    # Serve's data path as the embedded default runs it (set for the Ray workers; this test
    # process imported Serve already, so its own handles keep Ray's classic path).
    use_serve_environment(load_config().serve)
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
def grpc_target() -> str:
    """host:port of Serve's gRPC proxy for the session (a call names its app in metadata)."""
    return f"127.0.0.1:{free_loopback_port()}"


@pytest.fixture(scope="session")
def serve_url(ray_session, grpc_target: str) -> Iterator[str]:
    """Serve's HTTP proxy for the session; each app mounts at its own route prefix. Its gRPC
    proxy listens on `grpc_target`."""
    port = free_loopback_port()
    grpc_port = int(grpc_target.rsplit(":", 1)[1])
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        grpc_options=grpc_options(ServeConfig(grpc_port=grpc_port)),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


@pytest.fixture
def cfg(broker: LocalBroker) -> PinstreamConfig:
    return unique_config(broker.bootstrap)


@pytest.fixture(scope="session")
def text_encoder() -> TextEncoder:
    """The reference encoder in the test process: the oracle for pin and query vectors."""
    return TextEncoder(PinstreamConfig().model)
