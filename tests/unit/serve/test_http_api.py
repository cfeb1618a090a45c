"""The HTTP API over in-process fakes of the encoder and shard deployments (no Ray, no broker).

The same behaviours run over real Serve in tests/integration/serve.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError

from conf.config import PinstreamConfig, ShardsConfig
from serve.auth import API_KEYS_ENV
from serve.exceptions import PinNotIndexed, ShardNotReady
from serve.http_api import create_api, status_of
from serve.ingress import Ingress
from serve.shard_query import ShardQuery, answer_queries
from shards.shard_state import ShardState
from streams.routing import shard_of

DIM = 16
SHARDS = 2
PINS = [f"pin-{i:03d}" for i in range(60)]
BOARDS = {pin: ("Kitchen", "Den", "Porch")[i % 3] for i, pin in enumerate(PINS)}
GENERATION = PinstreamConfig().model.generation


def unit(values: np.ndarray) -> np.ndarray:
    return (values / np.linalg.norm(values, axis=-1, keepdims=True)).astype(np.float32)


VECTORS = unit(np.random.default_rng(5).standard_normal((len(PINS), DIM)))


class FakeMethod:
    """What `handle.method` is: `.remote(*args)` gives something to await."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def remote(self, *args: Any) -> Any:
        async def call() -> Any:
            result = self.function(*args)
            return await result if asyncio.iscoroutine(result) else result

        return call()


class FakeHandle:
    def __init__(self, target: object) -> None:
        self.target = target

    def options(self, **options: Any) -> FakeHandle:
        return self

    def __getattr__(self, name: str) -> FakeMethod:
        return FakeMethod(getattr(self.target, name))


def pin_rows(
    pins: list[str], vectors: np.ndarray, titles: list[str], boards: dict[str, str]
) -> pa.Table:
    """Embeddings-log upserts (version 1) of `pins` with their vectors, titles and boards."""
    return pa.table(
        {
            "pin_id": pins,
            "op": ["upsert"] * len(pins),
            "version": [1] * len(pins),
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.reshape(-1)), vectors.shape[1]
            ),
            "title": titles,
            "board": [boards[pin] for pin in pins],
        }
    )


class FakeShard:
    """A shard replica without its log: the same state and search as ShardReplica; every
    call raises `error` when one is given (a bug, or what Ray raises for a lost replica)."""

    def __init__(self, shard: int, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.shard, self.delay_s, self.error = shard, delay_s, error
        self.batches: list[int] = []  # the size of each search call's batch
        self.state = ShardState(ShardsConfig(dim=DIM))
        mine = [pin for pin in PINS if shard_of(pin, SHARDS) == shard]
        vectors = VECTORS[[PINS.index(pin) for pin in mine]]
        self.state.apply_rows(pin_rows(mine, vectors, [f"title {p}" for p in mine], BOARDS))

    async def search(self, query: ShardQuery) -> Any:
        return (await self.search_batch([query]))[0]

    async def search_batch(self, queries: list[ShardQuery]) -> Any:
        await asyncio.sleep(self.delay_s)
        self._fail()
        self.batches.append(len(queries))
        return answer_queries(self.state, queries)

    def get(self, pin_id: str) -> dict[str, Any] | None:
        self._fail()
        return self.state.get(pin_id)

    def stats(self) -> dict[str, Any]:
        self._fail()
        return {"shard": self.shard, "pins": len(self.state)}

    def _fail(self) -> None:
        if self.error is not None:
            raise self.error


class FakeEncoder:
    """Text 'like pin-007' encodes to pin-007's vector; 'boom' fails like a bug would. A text
    model: it embeds no images (as QueryEncoder answers for one)."""

    def encode(self, text: str) -> np.ndarray:
        if text == "boom":
            raise RuntimeError("secret internals")
        return VECTORS[PINS.index(text.removeprefix("like "))]

    def encode_image(self, pixels: np.ndarray) -> np.ndarray | None:
        return None


class RecordingMetric:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.values: list[float] = []

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self.calls.append(tags or {})
        self.values.append(value)

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(tags or {})
        self.values.append(value)


def make_ingress(
    keys: tuple[str, ...] = (),
    slow_shard: int | None = None,
    max_body_bytes: int = 1 << 20,
    failing: dict[int, Exception] | None = None,
    values: dict[str, Any] | None = None,
    encoder: object | None = None,
) -> Ingress:
    """An ingress over fake shards and `encoder` (a FakeEncoder by default); `values` are
    config values set on top of the test's own."""
    cfg = PinstreamConfig().with_values(
        {
            "shards.dim": DIM,
            "shards.count": SHARDS,
            "broker.bootstrap": "127.0.0.1:9092",
            "serve.shard_timeout_s": 0.2,
            "serve.api_keys": list(keys),
            "serve.max_body_bytes": max_body_bytes,
            "storage.root": tempfile.mkdtemp(prefix="pinstream-test-"),  # its own traffic policy
            # No sampled recall checks: they call the shards in the background, and tests
            # here count the calls each shard gets.
            "serve.recall_sample_rate": 0.0,
            **(values or {}),
        }
    )
    failing = failing or {}
    shards = [
        FakeHandle(FakeShard(s, delay_s=2.0 if s == slow_shard else 0.0, error=failing.get(s)))
        for s in range(SHARDS)
    ]
    encoder = FakeEncoder() if encoder is None else encoder
    ingress = Ingress(cfg, FakeHandle(encoder), shards)  # type: ignore[arg-type]
    for name in ("requests", "latency", "shard_latency", "shard_failures", "partial_results"):
        setattr(ingress.metrics, name, RecordingMetric())
    return ingress


def make_client(**options: Any) -> TestClient:
    return client_of(make_ingress(**options))


def client_of(ingress: Ingress) -> TestClient:
    return TestClient(create_api(ingress), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with make_client() as running:
        yield running


def exact(query: np.ndarray, k: int, keep: Callable[[str], bool]) -> list[str]:
    passing = [i for i, pin in enumerate(PINS) if keep(pin)]
    order = np.argsort(-(VECTORS[passing] @ query), kind="stable")[:k]
    return [PINS[passing[j]] for j in order]


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["pin_id"] for hit in response.json()["results"]]


def test_vector_search_with_filters_equals_exact_search_over_the_passing_pins(
    client: TestClient,
) -> None:
    query = VECTORS[7]
    excluded = exact(query, 5, lambda pin: BOARDS[pin] == "Kitchen")
    body = {
        "vector": query.tolist(),
        "k": 12,
        "boards": ["Kitchen"],
        "exclude_pin_ids": excluded,
    }
    found = ids(client.post("/v1/search", json=body))
    assert found == exact(query, 12, lambda p: BOARDS[p] == "Kitchen" and p not in excluded)
    assert len(found) == 12  # 20 Kitchen pins, 5 excluded: k still reached


def test_filters_leave_fewer_than_k_only_when_fewer_pass(client: TestClient) -> None:
    body = {"text": "like pin-001", "k": 50, "boards": ["Den", "Porch"], "exclude_pin_ids": []}
    found = ids(client.post("/v1/search", json=body))
    assert len(found) == 40 and {BOARDS[pin] for pin in found} == {"Den", "Porch"}
    assert ids(client.post("/v1/search", json={"text": "like pin-001", "boards": ["Attic"]})) == []


def test_related_excludes_the_pin_and_takes_filters_as_repeated_parameters(
    client: TestClient,
) -> None:
    params = {"k": 8, "boards": ["Den", "Porch"], "exclude_pin_ids": ["pin-004", "pin-005"]}
    found = ids(client.get("/v1/pins/pin-001/related", params=params))

    def passes(pin: str) -> bool:
        return BOARDS[pin] in {"Den", "Porch"} and pin not in {"pin-001", "pin-004", "pin-005"}

    assert found == exact(VECTORS[1], 8, passes)


def test_a_generation_that_is_served_is_accepted(client: TestClient) -> None:
    body = {"text": "like pin-002", "k": 1, "generation": GENERATION}
    assert ids(client.post("/v1/search", json=body)) == ["pin-002"]


def test_a_generation_that_is_not_warm_gets_409_naming_the_warm_ones(client: TestClient) -> None:
    for response in (
        client.post("/v1/search", json={"text": "like pin-002", "generation": "minilm-v9"}),
        client.get("/v1/pins/pin-001/related", params={"generation": "minilm-v9"}),
    ):
        assert response.status_code == 409
        assert "'minilm-v9' is not served" in response.json()["detail"]
        assert "warm generations: ['minilm-l6-v2-base']" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x", "boards": []}, "boards"),
        ({"text": "x", "boards": ["x" * 201]}, "boards"),
        ({"text": "x", "exclude_pin_ids": ["x" * 65]}, "exclude_pin_ids"),
        ({"text": "x", "exclude_pin_ids": ["p"] * 1001}, "exclude_pin_ids"),
        ({"text": "x", "generation": "no spaces please"}, "generation"),
        ({"text": "x", "board": ["Den"]}, "board"),  # a misspelt filter is not ignored
        ({"vector": [0.1] * (DIM + 1)}, "vector"),
    ],
)
def test_bad_filters_get_422(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 422
    assert field in response.text


def test_bad_related_query_gets_422(client: TestClient) -> None:
    assert client.get("/v1/pins/pin-001/related", params={"k": 1001}).status_code == 422
    assert client.get("/v1/pins/pin-001/related", params={"nope": 1}).status_code == 422


def test_an_unexpected_error_gets_500_with_a_request_id_and_no_internals(
    client: TestClient,
) -> None:
    response = client.post("/v1/search", json={"text": "boom"}, headers={"x-request-id": "r-42"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "request_id": "r-42"}
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_a_slow_shard_gives_a_partial_answer_naming_it() -> None:
    ingress = make_ingress(slow_shard=1)
    with client_of(ingress) as client:
        response = client.post("/v1/search", json={"text": "like pin-003", "k": 5})
        body = response.json()
        assert response.status_code == 200
        assert body["partial"] is True and body["missing_shards"] == [1]
        assert all(shard_of(hit["pin_id"], SHARDS) == 0 for hit in body["results"])
        assert client.get("/healthz").status_code == 200  # only its searches are slow
    assert ingress.metrics.partial_results.calls == [{"endpoint": "/v1/search"}]
    assert {"shard": "1", "method": "search", "reason": "timeout"} in (
        ingress.metrics.shard_failures.calls
    )


LOST_SHARD = [  # what a shard call raises when the shard's replica is gone, or late
    pytest.param(ActorDiedError(), "unavailable", id="actor-died"),
    pytest.param(ActorUnavailableError("unreachable", None), "unavailable", id="unavailable"),
    pytest.param(GetTimeoutError("late"), "timeout", id="get-timeout"),
]


@pytest.mark.parametrize(("error", "reason"), LOST_SHARD)
def test_a_lost_shard_gives_a_partial_answer_and_a_503_for_its_pins(
    error: Exception, reason: str
) -> None:
    ingress = make_ingress(failing={1: error})
    on_lost = next(pin for pin in PINS if shard_of(pin, SHARDS) == 1)
    with client_of(ingress) as client:
        body = client.post("/v1/search", json={"text": "like pin-003", "k": 5}).json()
        assert body["partial"] is True and body["missing_shards"] == [1]
        assert body["results"] and all(shard_of(h["pin_id"], SHARDS) == 0 for h in body["results"])
        response = client.get(f"/v1/pins/{on_lost}")
        assert response.status_code == 503
        assert response.json() == {"detail": f"the shard holding pin {on_lost!r} did not answer"}
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["missing_shards"] == [1]
    assert {"shard": "1", "method": "search", "reason": reason} in (
        ingress.metrics.shard_failures.calls
    )


def test_a_shard_with_a_bug_fails_the_request_with_500_not_a_partial_answer() -> None:
    ingress = make_ingress(failing={1: ValueError("secret shard internals")})
    on_buggy = next(pin for pin in PINS if shard_of(pin, SHARDS) == 1)
    headers = {"x-request-id": "r-7"}
    with client_of(ingress) as client:
        for response in (
            client.post("/v1/search", json={"text": "like pin-003"}, headers=headers),
            client.get("/v1/pins/pin-000/related", headers=headers),
            client.get(f"/v1/pins/{on_buggy}", headers=headers),
            client.get("/healthz", headers=headers),
        ):
            assert response.status_code == 500, response.url
            assert response.json() == {"detail": "internal error", "request_id": "r-7"}
    assert ingress.metrics.partial_results.calls == []
    assert {"shard": "1", "method": "search", "reason": "error"} in (
        ingress.metrics.shard_failures.calls
    )


def test_requests_are_counted_by_route_template_and_status() -> None:
    ingress = make_ingress(keys=("k1",))
    with client_of(ingress) as client:
        client.get("/v1/pins/pin-001", headers={"x-api-key": "k1"})
        client.get("/v1/pins/pin-002", headers={"x-api-key": "k1"})
        client.get("/v1/pins/pin-002")
        client.get("/nowhere")
    counted = Counter((tags["endpoint"], tags["status"]) for tags in ingress.metrics.requests.calls)
    assert counted == {
        ("/v1/pins/{pin_id}", "200"): 2,
        ("/v1/pins/{pin_id}", "401"): 1,
        ("unmatched", "404"): 1,
    }
    assert len(ingress.metrics.latency.calls) == 4
    assert {"shard": str(shard_of("pin-001", SHARDS)), "method": "get"} in (
        ingress.metrics.shard_latency.calls
    )


class TestApiKeys:
    @pytest.fixture(scope="class")
    def client(self) -> Iterator[TestClient]:
        with make_client(keys=("key-one", "key-two")) as running:
            yield running

    def test_no_key_gets_401_with_a_challenge(self, client: TestClient) -> None:
        response = client.post("/v1/search", json={"text": "like pin-001"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key is required" in response.json()["detail"]

    def test_a_wrong_key_gets_403(self, client: TestClient) -> None:
        for headers in ({"authorization": "Bearer nope"}, {"x-api-key": "key-one-"}):
            response = client.get("/v1/pins/pin-001", headers=headers)
            assert response.status_code == 403, headers

    @pytest.mark.parametrize(
        "headers",
        [
            {"authorization": "Bearer key-one"},
            {"Authorization": "bearer key-two"},
            {"X-API-Key": "key-two"},
        ],
    )
    def test_a_known_key_in_either_header_is_accepted(
        self, client: TestClient, headers: dict[str, str]
    ) -> None:
        assert client.get("/v1/pins/pin-001", headers=headers).status_code == 200

    def test_health_and_docs_stay_open(self, client: TestClient) -> None:
        assert client.get("/healthz").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200

    def test_auth_comes_before_the_body_is_read(self, client: TestClient) -> None:
        response = client.post("/v1/search", content=b"{not json")
        assert response.status_code == 401


def test_keys_from_the_environment_are_added(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEYS_ENV, " env-key , ,other")
    with make_client(keys=("cfg-key",)) as client:
        for key in ("cfg-key", "env-key", "other"):
            assert client.get("/v1/pins/pin-001", headers={"x-api-key": key}).status_code == 200


class TestBodyLimit:
    @pytest.fixture(scope="class")
    def client(self) -> Iterator[TestClient]:
        with make_client(max_body_bytes=2000) as running:
            yield running

    def test_a_declared_length_over_the_limit_gets_413(self, client: TestClient) -> None:
        response = client.post("/v1/search", json={"text": "x" * 1990})
        assert response.status_code == 413
        assert response.json() == {"detail": "request body over 2000 bytes"}

    def test_a_chunked_body_over_the_limit_gets_413(self, client: TestClient) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"text": "'
            for _ in range(30):
                yield b"x" * 100
            yield b'"}'

        response = client.post(
            "/v1/search", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413

    def test_a_body_under_the_limit_passes(self, client: TestClient) -> None:
        assert ids(client.post("/v1/search", json={"text": "like pin-009", "k": 1})) == ["pin-009"]


def test_a_pinstream_error_the_api_does_not_expect_is_a_500() -> None:
    assert status_of(PinNotIndexed("p", GENERATION)) == 404
    assert status_of(ShardNotReady("shard 0: not caught up")) is None


def test_a_batch_answers_each_query_in_order_as_it_would_be_answered_alone() -> None:
    ingress = make_ingress()
    queries: list[dict[str, Any]] = [
        {"vector": VECTORS[3].tolist(), "k": 4},
        {"text": "like pin-010", "k": 7, "boards": ["Den"]},
        {"vector": VECTORS[8].tolist(), "k": 4, "exclude_pin_ids": ["pin-008"]},
        {"text": "like pin-011", "k": 2},
    ]
    with client_of(ingress) as client:
        alone = [ids(client.post("/v1/search", json=query)) for query in queries]
        shards = [handle.target for handle in ingress.roster.clients[GENERATION].shards]
        for shard in shards:
            shard.batches.clear()
        response = client.post("/v1/search/batch", json={"queries": queries})
    assert response.status_code == 200, response.text
    items = response.json()["results"]
    assert [[hit["pin_id"] for hit in item["response"]["results"]] for item in items] == alone
    assert all(item["error"] is None for item in items)
    assert [shard.batches for shard in shards] == [[4], [4]]  # one call per shard for all four


def test_a_batch_query_that_fails_alone_gets_its_own_error_and_the_others_answer(
    client: TestClient,
) -> None:
    queries = [
        {"vector": [0.1] * (DIM - 1)},
        {"text": "like pin-002", "k": 1, "generation": "minilm-v9"},
        {"text": "like pin-002", "k": 1},
    ]
    items = client.post("/v1/search/batch", json={"queries": queries}).json()["results"]
    assert items[0]["error"] == {
        "status": 422,
        "detail": f"vector has {DIM - 1} values; this index has dim {DIM}",
    }
    assert (
        items[1]["error"]["status"] == 409
        and "'minilm-v9' is not served" in items[1]["error"]["detail"]
    )
    assert items[2]["error"] is None
    assert [hit["pin_id"] for hit in items[2]["response"]["results"]] == ["pin-002"]


def test_a_batch_over_the_configured_size_or_with_a_malformed_query_gets_422(
    client: TestClient,
) -> None:
    limit = PinstreamConfig().serve.max_batch_queries
    too_many = {"queries": [{"text": "like pin-001"}] * (limit + 1)}
    response = client.post("/v1/search/batch", json=too_many)
    assert response.status_code == 422
    assert f"at most {limit} queries (serve.max_batch_queries), got {limit + 1}" in response.text
    for body in ({"queries": []}, {"queries": [{"text": "x", "k": 0}]}, {"query": []}):
        response = client.post("/v1/search/batch", json=body)
        assert response.status_code == 422, body
