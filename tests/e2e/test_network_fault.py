"""The whole stack (`pinstream up`) against a broker behind a loopback TCP proxy that the
broker advertises: a black hole longer than the delivery timeout, then healed. The API
answers throughout, /healthz says ingest is retrying and why, and ingest resumes by itself:
every pin produced before, during and after the outage ends up searchable, as the fold
of the events says."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from streams.kafka_io import ensure_topics
from streams.local_broker import free_loopback_port
from streams.producer import PinProducer
from streams.synthetic import PinGenerator
from tests.e2e.up_process import UpProcess
from tests.integration.tcp_proxy import TcpProxy, broker_behind_proxy
from tests.waiting import wait_until

OUTAGE_S = 8.0  # > broker.delivery_timeout_ms below
RESUME_BOUND_S = 90.0  # heal -> every pin searchable, 100 of them produced after the heal


@pytest.fixture
def proxied() -> Iterator[tuple[TcpProxy, str]]:
    with broker_behind_proxy() as (proxy, broker):
        yield proxy, broker.bootstrap


def test_the_stack_rides_out_a_broker_outage(proxied: tuple[TcpProxy, str], tmp_path: Path) -> None:
    proxy, bootstrap = proxied
    config = tmp_path / "pinstream.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "broker": {
                    "bootstrap": bootstrap,
                    "request_timeout_ms": 2000,
                    "delivery_timeout_ms": 3000,
                    "close_timeout_s": 1.0,
                },
                "ingest": {"retry_backoff_s": 0.5, "retry_backoff_max_s": 2.0},
                "serve": {"port": free_loopback_port()},
                "shards": {"snapshot_interval_s": 0},
                "storage": {"root": str(tmp_path / "var")},
            }
        )
    )
    ensure_topics(bootstrap, {"pins": 2, "pins.dlq": 1, "pin-embeddings": 2})
    stack = UpProcess(config, tmp_path / "var" / "run" / "stack.json", tmp_path / "up.log")
    try:
        url = stack.wait_ready()["url"]
        generator = PinGenerator(seed=41, id_prefix="net")
        before, after = generator.pins(300), generator.pins(100, start=300)
        with PinProducer(bootstrap, "pins") as producer:
            producer.send_all(p.event for p in before)

        answers: list[int] = []
        states: set[str] = set()
        polling = threading.Event()

        def poll_health() -> None:
            while not polling.is_set():
                try:
                    response = requests.get(f"{url}/healthz", timeout=10)
                    answers.append(response.status_code)
                    states.add((response.json().get("ingest") or {}).get("state", "none"))
                except requests.RequestException as exc:
                    answers.append(-1)
                    states.add(f"error {exc}")
                time.sleep(0.25)

        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()

        def indexed() -> int:
            return int(requests.get(f"{url}/healthz", timeout=10).json()["pins"])

        wait_until(lambda: indexed() > 50, 180, "first pins searchable")
        proxy.blackhole()
        time.sleep(OUTAGE_S)
        proxy.heal()
        healed = time.monotonic()
        with PinProducer(bootstrap, "pins") as producer:
            producer.send_all(p.event for p in after)
        wait_until(lambda: indexed() == 400, RESUME_BOUND_S, "every pin searchable after the heal")
        resumed_s = time.monotonic() - healed
        wait_until(lambda: "running" in states, 30, "ingest reported running")
        polling.set()
        poller.join(timeout=15)

        assert set(answers) == {200}, answers  # the API answered throughout
        assert "retrying" in states, states  # and said why new pins did not arrive
        body = requests.get(f"{url}/healthz", timeout=10).json()
        assert body["ingest"]["state"] == "running" and body["status"] == "ok", body
        for pin in (*before[::37], *after[::23]):
            found = requests.get(f"{url}/v1/pins/{pin.event.pin_id}", timeout=10)
            assert found.status_code == 200
            assert found.json()["title"] == pin.event.title
        print(f"every pin searchable {resumed_s:.1f}s after the network healed")
        assert stack.interrupt() == 0, stack.log_tail()
    finally:
        stack.close()
