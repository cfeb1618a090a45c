"""Error paths over real Serve: a slow shard, a shard whose replica dies, a shard and an
encoder with a bug.

The ingress is the real one; the deployments behind it are fakes (tests/integration/serve/fakes.py).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator

import pytest
import requests
from ray import serve

from conf.config import PinstreamConfig
from serve.ingress import Ingress
from streams.routing import shard_of
from tests.integration.serve.conftest import deployed
from tests.integration.serve.fakes import FailingEncoder, FakeShard

SHARDS = 4  # 0 answers, 1 is too slow, 2 loses its replica on every call, 3 has a bug in get
TINY = {"num_cpus": 0.01}


@pytest.fixture(scope="module")
def url(ray_session: None, serve_url: str) -> Iterator[str]:
    cfg = PinstreamConfig().with_values(
        {
            "broker.bootstrap": "127.0.0.1:9",  # never used: the shards are fakes
            "shards.count": SHARDS,
            "serve.shard_timeout_s": 0.5,
            "serve.app_name": f"errors-{uuid.uuid4().hex[:8]}",
            "storage.root": tempfile.mkdtemp(prefix="pinstream-test-"),  # its own traffic policy
        }
    )
    shards = [
        serve.deployment(name=f"shard-{shard}", ray_actor_options=TINY)(FakeShard).bind(
            shard, delay_s=5.0 if shard == 1 else 0.0, dies=shard == 2, buggy_get=shard == 3
        )
        for shard in range(SHARDS)
    ]
    encoder = serve.deployment(name="query-encoder", ray_actor_options=TINY)(FailingEncoder)
    ingress = serve.deployment(name="ingress", ray_actor_options=TINY)(serve.ingress()(Ingress))
    with deployed(cfg, ingress.bind(cfg, encoder.bind(), shards), serve_url) as base:
        yield base


def test_slow_and_lost_shards_give_a_partial_answer_naming_them(url: str) -> None:
    response = requests.post(f"{url}/v1/search", json={"vector": [0.1] * 384, "k": 5}, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["partial"] is True and body["missing_shards"] == [1, 2]
    assert sorted(hit["pin_id"] for hit in body["results"]) == ["from-0", "from-3"]
    assert body["took_ms"] < 5000  # the slow shard was not waited for


def test_health_names_the_shard_that_does_not_answer(url: str) -> None:
    response = requests.get(f"{url}/healthz", timeout=30)
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["missing_shards"] == [2]


def test_a_pin_on_a_lost_shard_gets_503(url: str) -> None:
    pin_id = next(f"p{i}" for i in range(100) if shard_of(f"p{i}", SHARDS) == 2)
    response = requests.get(f"{url}/v1/pins/{pin_id}", timeout=30)
    assert response.status_code == 503
    assert response.json() == {"detail": f"the shard holding pin {pin_id!r} did not answer"}


@pytest.mark.parametrize("path", ["search", "pin"])
def test_an_internal_error_gets_500_with_the_request_id_and_no_internals(
    url: str, path: str
) -> None:
    if path == "search":  # the encoder's bug
        response = requests.post(f"{url}/v1/search", json={"text": "sofa"}, timeout=30)
    else:  # a shard's bug: a 500, not a shard that did not answer
        pin_id = next(f"p{i}" for i in range(100) if shard_of(f"p{i}", SHARDS) == 3)
        response = requests.get(f"{url}/v1/pins/{pin_id}", timeout=30)
    assert response.status_code == 500
    assert response.json() == {
        "detail": "internal error",
        "request_id": response.headers["x-request-id"],
    }
    assert "secret" not in response.text and "Traceback" not in response.text
