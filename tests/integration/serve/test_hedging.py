"""Hedged shard requests over real Serve: one of a shard's two replicas pauses now and then,
and no query waits for it."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import requests
from ray import serve

from conf.config import PinstreamConfig
from serve.ingress import Ingress
from tests.integration.serve.conftest import deployed
from tests.integration.serve.fakes import FailingEncoder, UnevenShard

TINY = {"num_cpus": 0.01}
PAUSE_S = 3.0


def test_a_pausing_replica_is_hedged_around(ray_session: None, serve_url: str) -> None:
    markers = tempfile.mkdtemp(prefix="pinstream-hedge-")
    cfg = PinstreamConfig().with_values(
        {
            "broker.bootstrap": "127.0.0.1:9",  # never used: the shard is a fake
            "shards.count": 1,
            "serve.shard_timeout_s": 2 * PAUSE_S,
            "serve.hedge_min_samples": 10,
            "serve.traffic_poll_s": 0.2,  # how soon the ingress sees the two replicas
            "serve.shard_autoscaling": {"min_replicas": 2, "max_replicas": 2},
            "serve.app_name": f"hedging-{uuid.uuid4().hex[:8]}",
            "storage.root": tempfile.mkdtemp(prefix="pinstream-test-"),
        }
    )
    shard = serve.deployment(name="shard-0", num_replicas=2, ray_actor_options=TINY)(
        UnevenShard
    ).bind(0, markers, PAUSE_S, 15)  # ~1 search in 30 pauses: above the shard's p95
    encoder = serve.deployment(name="query-encoder", ray_actor_options=TINY)(FailingEncoder)
    ingress = serve.deployment(name="ingress", ray_actor_options=TINY)(serve.ingress()(Ingress))
    with deployed(cfg, ingress.bind(cfg, encoder.bind(), [shard]), serve_url) as url:
        latencies: list[float] = []
        # Until the slow replica paused 3 times: how often Serve's router picks it varies with
        # the load (it favours the replica with fewer requests in flight), so no fixed count.
        deadline = time.monotonic() + 120
        while len(list(Path(markers).glob("pause-*"))) < 3 and time.monotonic() < deadline:
            started = time.perf_counter()
            response = requests.post(f"{url}/v1/search", json={"vector": [0.1] * 384}, timeout=30)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            assert not response.json()["partial"]
            assert [hit["pin_id"] for hit in response.json()["results"]] == ["from-0"]
    pauses = len(list(Path(markers).glob("pause-*")))
    assert pauses >= 3, f"the slow replica paused {pauses} times: the test did not test"
    slow = [s for s in latencies[20:] if s >= PAUSE_S]  # once 10+ latencies were observed
    assert not slow, f"{len(slow)} queries waited for the pausing replica ({pauses} pauses)"
