"""Serve's own autoscaler scales every deployment of the app, from 1 to 2 replicas and back.

The app is the one `pinstream up` builds (`build_app`): the ingress, the real query encoder
(MiniLM) and a real shard deployment (a new replica replays its log before it serves). The
config gives each deployment second-scale delays and a tiny target, so that text queries
from a few threads are load enough on two shared cores. Every answer, during the scale-up
and during the scale-down, must be a full 200.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from ray import serve

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder
from serve.app import build_app
from serve.generation import ENCODER_DEPLOYMENT, INGRESS_DEPLOYMENT
from streams.local_broker import LocalBroker
from streams.synthetic import PinGenerator
from tests.integration.conftest import unique_config
from tests.integration.serve.conftest import deployed, logged_pins
from tests.waiting import wait_until

COUNT = 60
DEPLOYMENTS = (INGRESS_DEPLOYMENT, ENCODER_DEPLOYMENT, "shard-0")
QUICK = {
    "min_replicas": 1,
    "max_replicas": 2,
    "upscale_delay_s": 1.0,
    "downscale_delay_s": 2.0,
    "look_back_period_s": 2.0,
    "metrics_interval_s": 0.5,
}


def scaling_config(bootstrap: str) -> PinstreamConfig:
    """One shard; every deployment scales in [1, 2] within seconds, at a target that a few
    query threads exceed and one slow client stays under."""
    return unique_config(bootstrap, shards=1).with_values(
        {
            "serve.app_name": f"scale-{uuid.uuid4().hex[:8]}",
            "serve.ingress_autoscaling": QUICK | {"target_ongoing_requests": 0.5},
            "serve.encoder_autoscaling": QUICK | {"target_ongoing_requests": 0.1},
            "serve.shard_autoscaling": QUICK | {"target_ongoing_requests": 0.05},
        }
    )


@pytest.fixture(scope="module")
def app(
    broker: LocalBroker, serve_url: str, text_encoder: TextEncoder
) -> Iterator[tuple[PinstreamConfig, str]]:
    cfg = scaling_config(broker.bootstrap)
    logged_pins(cfg, PinGenerator(seed=5, id_prefix="as").pins(COUNT), text_encoder)
    with deployed(cfg, build_app(cfg), serve_url) as url:
        yield cfg, url


def running_replicas(cfg: PinstreamConfig) -> dict[str, int]:
    deployments = serve.status().applications[cfg.serve.app_name].deployments
    return {name: deployments[name].replica_states.get("RUNNING", 0) for name in DEPLOYMENTS}


@dataclass
class Load:
    """Threads sending text queries, each pausing `pause_s` between them; every answer kept."""

    url: str
    threads: int
    pause_s: float = 0.0
    answers: list[tuple[int, object]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._workers = [
            threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _send(self, seed: int) -> None:
        with requests.Session() as session:
            for i in range(10**9):
                if self._stop.wait(self.pause_s):
                    return
                body = {"text": f"cozy reading corner {seed} {i % 7}", "k": 5}
                response = session.post(f"{self.url}/v1/search", json=body, timeout=30)
                partial = response.json().get("partial") if response.ok else response.text
                self.answers.append((response.status_code, partial))


def test_every_deployment_scales_to_two_replicas_under_load_and_back(
    app: tuple[PinstreamConfig, str],
) -> None:
    cfg, url = app
    assert running_replicas(cfg) == dict.fromkeys(DEPLOYMENTS, 1)
    reached: set[str] = set()

    def every_deployment_reached_two() -> bool:
        reached.update(name for name, n in running_replicas(cfg).items() if n == 2)
        return reached == set(DEPLOYMENTS)

    started = time.monotonic()
    with Load(url, threads=4) as heavy:
        wait_until(every_deployment_reached_two, timeout_s=90, what=f"2 replicas of {DEPLOYMENTS}")
    scaled_up_after = time.monotonic() - started
    # One slow client goes on while Serve removes the replicas the load no longer needs.
    with Load(url, threads=1, pause_s=0.5) as light:
        wait_until(
            lambda: running_replicas(cfg) == dict.fromkeys(DEPLOYMENTS, 1),
            timeout_s=90,
            what="back to 1 replica of each deployment",
        )
    for load in (heavy, light):  # no failed and no partial answer during either move
        assert load.answers and set(load.answers) == {(200, False)}, set(load.answers)
    print(f"scaled up after {scaled_up_after:.1f}s; {len(heavy.answers)} + {len(light.answers)}")
