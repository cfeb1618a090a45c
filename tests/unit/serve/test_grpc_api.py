"""The gRPC API over in-process fakes of the encoder and shard deployments (no Ray, no broker).

The oracle is the HTTP API over the same ingress: every answer and every error detail of a
gRPC method equals that of its HTTP route. The same calls run through Serve's gRPC proxy
with a real grpcio client in tests/integration/serve/test_grpc_api.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from ray.exceptions import ActorDiedError

from conf.config import ServeConfig
from serve.grpc_api import GRPC_CODE_OF, fields_of, grpc_options
from serve.http_api import STATUS_OF, create_api
from serve.ingress import Ingress
from serve.proto import pinstream_pb2 as pb
from streams.routing import shard_of
from tests.unit.serve.test_http_api import DIM, GENERATION, PINS, SHARDS, VECTORS, make_ingress


class Call:
    """A call's context as Serve's gRPC proxy hands it to the ingress: metadata in; the
    status code, its details and the trailing metadata out."""

    def __init__(self, **metadata: str) -> None:
        self.metadata = [(name.replace("_", "-"), value) for name, value in metadata.items()]
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.trailing: list[tuple[str, str]] = []

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def set_trailing_metadata(self, trailing_metadata: list[tuple[str, str]]) -> None:
        self.trailing = trailing_metadata


def call(ingress: Ingress, method: str, request: Message, **metadata: str) -> tuple[Any, Call]:
    """Call the ingress method Serve's proxy calls for RPC `method`; the reply and the call."""
    context = Call(**metadata)
    reply = asyncio.run(getattr(ingress, method)(request, context))
    return reply, context


def answered(reply: Message, context: Call) -> dict[str, Any]:
    """The reply as the HTTP body would read (took_ms aside), once the call is OK."""
    assert context.code is None, (context.code, context.details)
    body = MessageToDict(reply, preserving_proto_field_name=True)
    body.pop("took_ms", None)
    return body


def http_body(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    body.pop("took_ms")
    # What protobuf leaves out when it equals its default
    return {name: value for name, value in body.items() if value not in (None, False, [])}


@pytest.fixture(scope="module")
def ingress() -> Ingress:
    return make_ingress()


@pytest.fixture(scope="module")
def http(ingress: Ingress) -> Iterator[TestClient]:
    with TestClient(create_api(ingress), raise_server_exceptions=False) as client:
        yield client


def scored(body: dict[str, Any]) -> dict[str, Any]:
    """Scores rounded to float32's precision: protobuf carries them as float."""
    hits = [{**hit, "score": round(hit["score"], 5)} for hit in body.get("results", [])]
    return {**body, "results": hits}


def test_vector_search_equals_http(ingress: Ingress, http: TestClient) -> None:
    vector = VECTORS[7].tolist()
    request = pb.SearchRequest(vector=vector, k=12, boards=["Kitchen"], exclude_pin_ids=PINS[:3])
    reply, context = call(ingress, "Search", request)
    body = {"vector": vector, "k": 12, "boards": ["Kitchen"], "exclude_pin_ids": PINS[:3]}
    expected = http_body(http.post("/v1/search", json=body))
    assert len(expected["results"]) == 12
    assert scored(answered(reply, context)) == scored(expected)


def test_text_search_and_defaults_equal_http(ingress: Ingress, http: TestClient) -> None:
    reply, context = call(ingress, "Search", pb.SearchRequest(text="like pin-004"))
    expected = http_body(http.post("/v1/search", json={"text": "like pin-004"}))
    assert len(expected["results"]) == 10  # k unset: HTTP's default
    assert scored(answered(reply, context)) == scored(expected)


def test_get_pin_and_related_equal_http(ingress: Ingress, http: TestClient) -> None:
    reply, context = call(ingress, "GetPin", pb.GetPinRequest(pin_id="pin-001"))
    pin = http.get("/v1/pins/pin-001").json()
    assert answered(reply, context) == {**pin, "version": str(pin["version"])}  # int64: a string
    request = pb.RelatedRequest(pin_id="pin-001", k=8, boards=["Den", "Porch"])
    reply, context = call(ingress, "Related", request)
    params = {"k": 8, "boards": ["Den", "Porch"]}
    expected = http_body(http.get("/v1/pins/pin-001/related", params=params))
    assert scored(answered(reply, context)) == scored(expected)


def test_healthz_carries_the_http_body(ingress: Ingress, http: TestClient) -> None:
    reply, context = call(ingress, "Healthz", pb.HealthRequest())
    assert context.code is None
    body = http.get("/healthz").json()
    assert reply.healthy and reply.status == body["status"] and reply.pins == len(PINS)
    assert reply.generation == GENERATION and list(reply.missing_shards) == []
    assert MessageToDict(reply.body)["shards"] == body["shards"]


def error_of(ingress: Ingress, method: str, request: Message, **metadata: str) -> Call:
    _, context = call(ingress, method, request, **metadata)
    assert context.code is not None, "expected an error"
    return context


def test_a_wrong_vector_is_invalid_argument_with_the_http_detail(
    ingress: Ingress, http: TestClient
) -> None:
    context = error_of(ingress, "Search", pb.SearchRequest(vector=[0.1] * (DIM + 1)))
    response = http.post("/v1/search", json={"vector": [0.1] * (DIM + 1)})
    assert response.status_code == 422
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        context.details
        == response.json()["detail"]
        == (f"vector has {DIM + 1} values; this index has dim {DIM}")
    )


@pytest.mark.parametrize(
    "body",
    [
        {"text": "x", "k": 0},
        {"text": "x", "k": 1001},
        {"text": "x", "vector": [0.5]},
        {},
        {"text": "x", "generation": "no spaces"},
        {"text": "x", "exclude_pin_ids": ["p" * 65]},
        {"text": "x", "boards": ["b" * 201]},
    ],
)
def test_a_request_the_schema_refuses_is_invalid_argument_naming_the_field_as_http_does(
    ingress: Ingress, http: TestClient, body: dict[str, Any]
) -> None:
    context = error_of(ingress, "Search", pb.SearchRequest(**body))
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    response = http.post("/v1/search", json=body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    field = ".".join(str(part) for part in error["loc"][1:])  # HTTP's loc starts at "body"
    assert context.details == (f"{field}: {error['msg']}" if field else error["msg"])


def test_bad_pin_ids_and_related_queries_are_invalid_argument(ingress: Ingress) -> None:
    for method, request in (
        ("GetPin", pb.GetPinRequest(pin_id="")),
        ("GetPin", pb.GetPinRequest(pin_id="p" * 65)),
        ("Related", pb.RelatedRequest(pin_id="pin-001", k=1001)),
    ):
        context = error_of(ingress, method, request)
        assert context.code == grpc.StatusCode.INVALID_ARGUMENT, request
    assert "pin_id: String should have at least 1 character" in (
        error_of(ingress, "GetPin", pb.GetPinRequest(pin_id="")).details
    )


def test_a_missing_pin_is_not_found_with_the_http_detail(
    ingress: Ingress, http: TestClient
) -> None:
    for method, request, path in (
        ("GetPin", pb.GetPinRequest(pin_id="nope"), "/v1/pins/nope"),
        ("Related", pb.RelatedRequest(pin_id="nope"), "/v1/pins/nope/related"),
    ):
        context = error_of(ingress, method, request)
        response = http.get(path)
        assert response.status_code == 404
        assert (context.code, context.details) == (
            grpc.StatusCode.NOT_FOUND,
            response.json()["detail"],
        )


def test_a_generation_not_served_is_failed_precondition(ingress: Ingress, http: TestClient) -> None:
    context = error_of(ingress, "Search", pb.SearchRequest(text="like pin-1", generation="v9"))
    response = http.post("/v1/search", json={"text": "like pin-1", "generation": "v9"})
    assert response.status_code == 409
    assert context.code == grpc.StatusCode.FAILED_PRECONDITION
    assert context.details == response.json()["detail"]


def test_a_lost_shard_is_unavailable_for_its_pins_and_unhealthy() -> None:
    ingress = make_ingress(failing={1: ActorDiedError()})
    on_lost = next(pin for pin in PINS if shard_of(pin, SHARDS) == 1)
    context = error_of(ingress, "GetPin", pb.GetPinRequest(pin_id=on_lost))
    assert context.code == grpc.StatusCode.UNAVAILABLE
    assert context.details == f"the shard holding pin {on_lost!r} did not answer"
    reply, context = call(ingress, "Healthz", pb.HealthRequest())
    assert context.code is None and not reply.healthy and list(reply.missing_shards) == [1]


def test_a_bug_is_internal_naming_a_request_id_with_the_traceback_in_the_log_only(
    ingress: Ingress, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="serve.grpc_api"):
        context = error_of(ingress, "Search", pb.SearchRequest(text="boom"), x_request_id="r-42")
    assert context.code == grpc.StatusCode.INTERNAL
    assert context.details == "internal error (request_id r-42)"
    assert ("x-request-id", "r-42") in context.trailing
    (record,) = caplog.records
    assert "r-42" in record.getMessage() and "secret internals" in str(record.exc_info)
    fresh = error_of(ingress, "Search", pb.SearchRequest(text="boom"))
    assert fresh.details.startswith("internal error (request_id ") and len(fresh.trailing) == 1


class TestApiKeys:
    @pytest.fixture(scope="class")
    def keyed(self) -> Ingress:
        return make_ingress(keys=("key-one", "key-two"))

    def test_no_key_is_unauthenticated_and_a_wrong_one_permission_denied(
        self, keyed: Ingress
    ) -> None:
        request = pb.GetPinRequest(pin_id="pin-001")
        with TestClient(create_api(keyed)) as http:
            http_401 = http.get("/v1/pins/pin-001").json()["detail"]
            http_403 = http.get("/v1/pins/pin-001", headers={"x-api-key": "no"}).json()["detail"]
        context = error_of(keyed, "GetPin", request)
        assert (context.code, context.details) == (grpc.StatusCode.UNAUTHENTICATED, http_401)
        for metadata in ({"authorization": "Bearer nope"}, {"x_api_key": "key-one-"}):
            context = error_of(keyed, "GetPin", request, **metadata)
            assert (context.code, context.details) == (grpc.StatusCode.PERMISSION_DENIED, http_403)

    @pytest.mark.parametrize(
        "metadata",
        [
            {"authorization": "Bearer key-one"},
            {"authorization": "bearer key-two"},
            {"x_api_key": "key-two"},
        ],
    )
    def test_a_known_key_in_either_metadata_is_accepted(
        self, keyed: Ingress, metadata: dict[str, str]
    ) -> None:
        reply, context = call(keyed, "GetPin", pb.GetPinRequest(pin_id="pin-001"), **metadata)
        assert context.code is None and reply.pin_id == "pin-001"

    def test_healthz_stays_open(self, keyed: Ingress) -> None:
        reply, context = call(keyed, "Healthz", pb.HealthRequest())
        assert context.code is None and reply.healthy


def test_search_batch_equals_http_in_order_with_per_query_errors(
    ingress: Ingress, http: TestClient
) -> None:
    queries = [
        {"text": "like pin-004", "k": 3},
        {"vector": VECTORS[9].tolist(), "k": 2, "generation": "v9"},  # 409 for this one alone
        {"vector": VECTORS[9].tolist(), "k": 2},
    ]
    request = pb.BatchSearchRequest(queries=[pb.SearchRequest(**query) for query in queries])
    reply, context = call(ingress, "SearchBatch", request)
    assert context.code is None
    expected = http.post("/v1/search/batch", json={"queries": queries}).json()["results"]
    got = MessageToDict(reply, preserving_proto_field_name=True)["results"]
    assert len(got) == len(expected) == 3
    assert got[1]["error"] == expected[1]["error"] and got[1]["error"]["status"] == 409
    for mine, theirs in zip(got[::2], expected[::2], strict=True):
        assert [hit["pin_id"] for hit in mine["response"]["results"]] == [
            hit["pin_id"] for hit in theirs["response"]["results"]
        ]


def test_every_http_status_of_the_api_has_a_grpc_code() -> None:
    assert set(STATUS_OF.values()) | {401, 403, 413} == set(GRPC_CODE_OF)


def test_a_request_over_the_body_limit_is_resource_exhausted_with_the_http_detail() -> None:
    limited = make_ingress(max_body_bytes=2048)
    http = TestClient(create_api(limited))
    vector = [0.5] * DIM
    small = pb.SearchRequest(vector=vector, k=3)
    assert small.ByteSize() <= 2048
    answered(*call(limited, "Search", small))
    big = pb.BatchSearchRequest(queries=[small] * 40)
    assert big.ByteSize() > 2048
    _, context = call(limited, "SearchBatch", big)
    assert context.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    body = {"queries": [{"vector": vector, "k": 3}] * 40}
    response = http.post("/v1/search/batch", json=body)
    assert response.status_code == 413
    assert context.details == response.json()["detail"] == "request body over 2048 bytes"


def test_fields_of_leaves_out_what_a_request_does_not_set() -> None:
    assert fields_of(pb.SearchRequest(text="sofa")) == {"text": "sofa"}
    assert fields_of(pb.SearchRequest(text="", k=0, boards=[])) == {"text": "", "k": 0}
    assert fields_of(pb.SearchRequest(vector=[0.5], boards=["Den"])) == {
        "vector": [0.5],
        "boards": ["Den"],
    }


def test_grpc_options_serve_pin_search_on_the_port_or_nothing() -> None:
    assert grpc_options(ServeConfig(grpc_port=0)) is None
    options = grpc_options(ServeConfig(grpc_port=9123))
    assert options is not None and options.port == 9123
    (add_servicer,) = options.grpc_servicer_func_callable  # Serve imports it, as its proxy does
    assert add_servicer.__name__ == "add_PinSearchServicer_to_server"


def test_every_call_is_counted_and_timed_by_rpc_and_code() -> None:
    keyed = make_ingress(keys=("key-one",))
    answered(*call(keyed, "Search", pb.SearchRequest(vector=[0.5] * DIM, k=3), x_api_key="key-one"))
    call(keyed, "Search", pb.SearchRequest(vector=[0.5] * (DIM + 1)), x_api_key="key-one")
    call(keyed, "GetPin", pb.GetPinRequest(pin_id="pin-001"))  # no key
    call(keyed, "Healthz", pb.HealthRequest())
    counted = [(tags["endpoint"], tags["status"]) for tags in keyed.metrics.requests.calls]  # type: ignore[attr-defined]
    assert counted == [
        ("/pinstream.v1.PinSearch/Search", "OK"),
        ("/pinstream.v1.PinSearch/Search", "INVALID_ARGUMENT"),
        ("/pinstream.v1.PinSearch/GetPin", "UNAUTHENTICATED"),
        ("/pinstream.v1.PinSearch/Healthz", "OK"),
    ]
    timed = [tags["endpoint"] for tags in keyed.metrics.latency.calls]  # type: ignore[attr-defined]
    assert timed == [endpoint for endpoint, _ in counted]
