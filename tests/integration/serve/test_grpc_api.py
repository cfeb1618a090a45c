"""The gRPC API through Serve's gRPC proxy, with a real grpcio client, on a real app of 40 pins.

Every answer and error is checked against exact search or against the HTTP API of the same
app: same operations, same errors (the gRPC code of the HTTP status, the HTTP detail).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
import requests

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder
from serve.app import build_app
from serve.proto import pinstream_pb2 as pb
from serve.proto.pinstream_pb2_grpc import PinSearchStub
from streams.local_broker import LocalBroker
from streams.synthetic import PinGenerator, SyntheticPin
from tests.integration.conftest import unique_config
from tests.integration.serve.conftest import deployed, logged_pins
from tests.waiting import wait_until

COUNT = 40
KEY = "grpc-key-1"


@dataclass
class Api:
    url: str
    cfg: PinstreamConfig
    stub: PinSearchStub
    pins: list[SyntheticPin]
    vectors: np.ndarray
    encoder: TextEncoder

    def metadata(self, *key: tuple[str, str]) -> list[tuple[str, str]]:
        """The app to call (several are deployed in a session), and `key` (default: KEY)."""
        return [("application", self.cfg.serve.app_name), *(key or [("x-api-key", KEY)])]

    def http(self, method: str, path: str, **kwargs: object) -> requests.Response:
        return requests.request(
            method, f"{self.url}{path}", headers={"x-api-key": KEY}, timeout=30, **kwargs
        )

    def exact(self, query: np.ndarray, k: int) -> list[str]:
        order = np.argsort(-(self.vectors @ query), kind="stable")[:k]
        return [self.pins[i].event.pin_id for i in order]


def healthy(stub: PinSearchStub, app: str) -> bool:
    try:
        reply = stub.Healthz(pb.HealthRequest(), metadata=[("application", app)], timeout=10)
    except grpc.RpcError:  # the proxy learns of a new app a moment after it runs
        return False
    return reply.healthy


@pytest.fixture(scope="module")
def api(
    broker: LocalBroker, serve_url: str, grpc_target: str, text_encoder: TextEncoder
) -> Iterator[Api]:
    cfg = unique_config(broker.bootstrap).with_value("serve.api_keys", [KEY])
    pins = PinGenerator(seed=23, id_prefix="grpc").pins(COUNT)
    vectors = logged_pins(cfg, pins, text_encoder)
    with (
        deployed(cfg, build_app(cfg), serve_url) as url,
        grpc.insecure_channel(grpc_target) as channel,
    ):
        stub = PinSearchStub(channel)
        wait_until(lambda: healthy(stub, cfg.serve.app_name), 60, "gRPC Healthz answering")
        yield Api(url, cfg, stub, pins, vectors, text_encoder)


def ids(reply: pb.SearchResponse) -> list[str]:
    return [hit.pin_id for hit in reply.results]


def rpc_error(
    call: Callable[..., object], request: object, metadata: list[tuple[str, str]]
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, metadata=metadata, timeout=30)
    return raised.value


def test_healthz_counts_every_pin_and_needs_no_key(api: Api) -> None:
    reply = api.stub.Healthz(pb.HealthRequest(), metadata=api.metadata(("x", "y")), timeout=10)
    assert reply.healthy and reply.status == "ok" and reply.pins == COUNT
    assert reply.generation == api.cfg.model.generation


def test_search_by_vector_equals_exact_search_and_http(api: Api) -> None:
    query = api.vectors[5]
    request = pb.SearchRequest(vector=query.tolist(), k=7)
    reply = api.stub.Search(request, metadata=api.metadata(), timeout=30)
    assert ids(reply) == api.exact(query, 7)
    assert not reply.partial and reply.generation == api.cfg.model.generation
    body = api.http("POST", "/v1/search", json={"vector": query.tolist(), "k": 7}).json()
    assert ids(reply) == [hit["pin_id"] for hit in body["results"]]
    assert [h.score for h in reply.results] == pytest.approx([h["score"] for h in body["results"]])


def test_search_by_text_with_a_filter_equals_http(api: Api) -> None:
    board = api.pins[3].event.board
    request = pb.SearchRequest(text=api.pins[3].event.title, k=5, boards=[board])
    reply = api.stub.Search(request, metadata=api.metadata(), timeout=30)
    assert ids(reply) and {hit.board for hit in reply.results} == {board}
    body = {"text": api.pins[3].event.title, "k": 5, "boards": [board]}
    expected = api.http("POST", "/v1/search", json=body).json()["results"]
    assert ids(reply) == [hit["pin_id"] for hit in expected]


def test_get_pin_and_related_equal_http(api: Api) -> None:
    pin = api.pins[2].event
    reply = api.stub.GetPin(pb.GetPinRequest(pin_id=pin.pin_id), metadata=api.metadata())
    assert (reply.pin_id, reply.title, reply.board) == (pin.pin_id, pin.title, pin.board)
    assert reply.version == 1 and reply.generation == api.cfg.model.generation
    request = pb.RelatedRequest(pin_id=pin.pin_id, k=4)
    related = api.stub.Related(request, metadata=api.metadata(), timeout=30)
    assert ids(related) == api.exact(api.vectors[2], 5)[1:]  # the pin itself left out
    expected = api.http("GET", f"/v1/pins/{pin.pin_id}/related", params={"k": 4}).json()
    assert ids(related) == [hit["pin_id"] for hit in expected["results"]]


def test_a_wrong_vector_dim_is_invalid_argument_with_the_http_detail(api: Api) -> None:
    vector = [0.1] * (api.cfg.shards.dim - 1)
    error = rpc_error(api.stub.Search, pb.SearchRequest(vector=vector), api.metadata())
    response = api.http("POST", "/v1/search", json={"vector": vector})
    assert response.status_code == 422
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == response.json()["detail"]


def test_a_request_the_schema_refuses_is_invalid_argument(api: Api) -> None:
    error = rpc_error(api.stub.Search, pb.SearchRequest(text="sofa", k=0), api.metadata())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("k: Input should be greater than or equal to 1")


def test_a_missing_pin_is_not_found_with_the_http_detail(api: Api) -> None:
    error = rpc_error(api.stub.GetPin, pb.GetPinRequest(pin_id="no-such-pin"), api.metadata())
    response = api.http("GET", "/v1/pins/no-such-pin")
    assert response.status_code == 404
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == response.json()["detail"]


def test_a_generation_not_served_is_failed_precondition(api: Api) -> None:
    request = pb.SearchRequest(text="sofa", generation="minilm-l6-v2-ft-7")
    error = rpc_error(api.stub.Search, request, api.metadata())
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "warm generations: " in error.details()


def test_api_keys_are_those_of_http(api: Api) -> None:
    request = pb.GetPinRequest(pin_id=api.pins[0].event.pin_id)
    no_key = rpc_error(api.stub.GetPin, request, [("application", api.cfg.serve.app_name)])
    assert no_key.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "API key is required" in no_key.details()
    for wrong in (("authorization", "Bearer wrong"), ("x-api-key", "wrong")):
        error = rpc_error(api.stub.GetPin, request, api.metadata(wrong))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, wrong
    bearer = api.metadata(("authorization", f"Bearer {KEY}"))
    assert api.stub.GetPin(request, metadata=bearer, timeout=30).pin_id == request.pin_id


def test_search_batch_answers_in_order_with_per_query_errors(api: Api) -> None:
    queries = [
        pb.SearchRequest(vector=api.vectors[1].tolist(), k=3),
        pb.SearchRequest(text="sofa", generation="minilm-l6-v2-ft-7"),
        pb.SearchRequest(vector=api.vectors[8].tolist(), k=2),
    ]
    reply = api.stub.SearchBatch(
        pb.BatchSearchRequest(queries=queries), metadata=api.metadata(), timeout=30
    )
    first, second, third = reply.results
    assert ids(first.response) == api.exact(api.vectors[1], 3)
    assert second.WhichOneof("outcome") == "error" and second.error.status == 409
    assert ids(third.response) == api.exact(api.vectors[8], 2)
