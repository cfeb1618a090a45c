"""Queries routed between two warm generations by the traffic policy (no Ray, no broker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conf.config import PinstreamConfig
from serve.http_api import create_api
from serve.ingress import Ingress
from serve.traffic import TrafficPolicy, TrafficStore
from tests.unit.serve.test_http_api import DIM, SHARDS, FakeEncoder, FakeHandle, FakeShard
from tests.waiting import wait_until

OTHER = "minilm-ft-0002"


@pytest.fixture
def cfg(tmp_path: Path) -> PinstreamConfig:
    cfg = PinstreamConfig().with_values(
        {
            "shards.dim": DIM,
            "shards.count": SHARDS,
            "broker.bootstrap": "127.0.0.1:9092",
            "storage.root": str(tmp_path),
            "serve.traffic_poll_s": 3600.0,  # the tests refresh the policy themselves
            "serve.recall_sample_rate": 1.0,
        }
    )
    return cfg


def fake_generation() -> tuple[FakeHandle, list[FakeHandle]]:
    return FakeHandle(FakeEncoder()), [FakeHandle(FakeShard(s)) for s in range(SHARDS)]


@pytest.fixture
def ingress(cfg: PinstreamConfig, monkeypatch: pytest.MonkeyPatch) -> Ingress:
    encoder, shards = fake_generation()
    ingress = Ingress(cfg, encoder, shards)  # type: ignore[arg-type]
    reachable = {OTHER}

    def remote_client(generation: str):  # stands in for the Serve handles of another app
        if generation not in reachable:
            raise RuntimeError(f"no application runs {generation}")
        other_encoder, other_shards = fake_generation()
        return ingress.roster._client(generation, other_encoder, other_shards)  # type: ignore[arg-type]

    monkeypatch.setattr(ingress.roster, "_remote_client", remote_client)
    return ingress


@pytest.fixture
def client(ingress: Ingress) -> Iterator[TestClient]:
    with TestClient(create_api(ingress), raise_server_exceptions=False) as running:
        yield running


def set_policy(ingress: Ingress, policy: TrafficPolicy) -> None:
    TrafficStore(ingress.cfg).set(policy)
    ingress.roster.refresh_policy()


def answered_by(client: TestClient, **body: object) -> tuple[str, str | None]:
    response = client.post("/v1/search", json={"text": "like pin-007", "k": 5, **body})
    assert response.status_code == 200, response.text
    return response.json()["generation"], response.json()["fallback_from"]


def test_the_primary_answers_by_default_and_a_named_generation_is_pinned(
    ingress: Ingress, client: TestClient
) -> None:
    own = ingress.generation
    assert answered_by(client) == (own, None)
    response = client.post("/v1/search", json={"text": "like pin-007", "generation": OTHER})
    assert response.status_code == 409, "not warm until a policy names it"
    set_policy(ingress, TrafficPolicy(own, shadow=OTHER))
    assert answered_by(client, generation=OTHER) == (OTHER, None)


def test_canary_switch_and_rollback_are_whole_queries(ingress: Ingress, client: TestClient) -> None:
    own = ingress.generation
    set_policy(ingress, TrafficPolicy(own, canary=OTHER, canary_percent=100.0))
    assert {answered_by(client) for _ in range(5)} == {(OTHER, None)}
    set_policy(ingress, TrafficPolicy(OTHER))
    assert answered_by(client) == (OTHER, None)
    TrafficStore(ingress.cfg).rollback()
    TrafficStore(ingress.cfg).rollback()
    ingress.roster.refresh_policy()
    assert answered_by(client) == (own, None)
    stats = client.get("/v1/generations").json()["stats"]
    assert stats[OTHER]["answered"] == {"canary": 5, "primary": 1}
    assert stats[own]["answered"] == {"primary": 1}


def test_low_confidence_answers_come_from_the_fallback(
    ingress: Ingress, client: TestClient
) -> None:
    own = ingress.generation
    set_policy(ingress, TrafficPolicy(own, fallback=OTHER, fallback_below=0.5))
    assert answered_by(client) == (own, None), "the pin itself scores 1.0: confident"
    set_policy(ingress, TrafficPolicy(own, fallback=OTHER, fallback_below=1.5))
    assert answered_by(client) == (OTHER, own)


def test_shadow_is_scored_not_served_and_recall_is_monitored(
    ingress: Ingress, client: TestClient
) -> None:
    own = ingress.generation
    set_policy(ingress, TrafficPolicy(own, shadow=OTHER))
    for _ in range(3):
        assert answered_by(client) == (own, None)

    def stats() -> dict:
        return client.get("/v1/generations").json()["stats"]

    wait_until(lambda: stats().get(OTHER, {}).get("shadow_runs") == 3, 10, "shadow runs")
    wait_until(lambda: stats()[own]["recall_samples"] == 3, 10, "recall samples")
    assert stats()[OTHER]["shadow_overlap"] == 1.0, "same pins, same vectors: same answers"
    assert stats()[own]["online_recall"] == 1.0, "exact shards: recall 1"
    assert "answered" not in stats()[OTHER] or not stats()[OTHER]["answered"]

    set_policy(ingress, TrafficPolicy(own, canary=OTHER, canary_percent=100.0, shadow=OTHER))
    assert answered_by(client) == (OTHER, None)
    wait_until(lambda: stats()[OTHER]["recall_samples"] == 1, 10, "recall sample")
    assert stats()[OTHER]["shadow_runs"] == 3, "a generation never shadows its own answer"


def test_a_policy_naming_an_unreachable_generation_is_not_adopted(
    ingress: Ingress, client: TestClient
) -> None:
    own = ingress.generation
    set_policy(ingress, TrafficPolicy(own, canary="not-deployed", canary_percent=50.0))
    assert ingress.policy == TrafficPolicy(own)
    assert {answered_by(client) for _ in range(5)} == {(own, None)}
