"""The gRPC API (service pinstream.v1.PinSearch, serve/proto/pinstream.proto) beside HTTP.

Serve's gRPC proxy calls the ingress deployment's methods named like the RPCs
(`Ingress.Search`, ...); each delegates here. This module translates protobuf to the
HTTP API's pydantic models and back, so both check a request by the same rules, and gives
each error the gRPC code of its HTTP status (`STATUS_OF` in serve/http_api.py): the status
details are the HTTP detail. Any other exception is a bug: INTERNAL, naming a request id,
with the traceback in the log only. API keys are those of HTTP, read from the metadata, and
so is the size limit: a request over `serve.max_body_bytes` (as protobuf encodes it) is
RESOURCE_EXHAUSTED with HTTP's 413 detail.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc
from google.protobuf.json_format import ParseDict
from google.protobuf.message import Message
from pydantic import BaseModel, TypeAdapter, ValidationError

from conf.config import ServeConfig
from serve.api_models import BatchSearchRequest, PinId, RelatedQuery, SearchRequest
from serve.auth import KeyCheck
from serve.body_limit import too_large
from serve.exceptions import InvalidQuery, ServeError
from serve.http_api import batch_response, status_of
from serve.proto import pinstream_pb2 as pb

if TYPE_CHECKING:
    from ray.serve.config import gRPCOptions

    from serve.ingress import Ingress

log = logging.getLogger(__name__)

# What Serve's gRPC proxy imports to serve PinSearch (gRPCOptions.grpc_servicer_functions).
SERVICER_FUNCTION = "serve.proto.pinstream_pb2_grpc.add_PinSearchServicer_to_server"

SERVICE = "pinstream.v1.PinSearch"  # the service's full name, as RPC paths name it

# The gRPC code of each HTTP status the API answers on purpose.
GRPC_CODE_OF: dict[int, grpc.StatusCode] = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}

Reply = TypeVar("Reply", bound=Message)
Model = TypeVar("Model", bound=BaseModel)
PIN_ID = TypeAdapter(PinId)


class CallContext(Protocol):
    """What the API needs of a call's context (Serve's RayServegRPCContext)."""

    def invocation_metadata(self) -> list[tuple[str, str]]: ...
    def set_code(self, code: grpc.StatusCode) -> None: ...
    def set_details(self, details: str) -> None: ...
    def set_trailing_metadata(self, trailing_metadata: list[tuple[str, str]]) -> None: ...


def grpc_options(settings: ServeConfig) -> gRPCOptions | None:
    """The gRPC options of `serve.start`: PinSearch on `settings.grpc_port`, None when 0."""
    from ray.serve.config import gRPCOptions  # Serve's own model, where Serve is started

    if settings.grpc_port == 0:
        return None
    return gRPCOptions(port=settings.grpc_port, grpc_servicer_functions=[SERVICER_FUNCTION])


def fields_of(message: Message) -> dict[str, Any]:
    """The fields a message sets, as the HTTP body would carry them: an unset optional field
    or an empty list is left out, so the model's default applies."""
    return {
        field.name: list(value) if field.is_repeated else value
        for field, value in message.ListFields()
    }


def parsed(model: type[Model], fields: Mapping[str, Any]) -> Model:
    """`model` of `fields`, or InvalidQuery naming each field that fails its check."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidQuery(validation_detail(exc)) from None


def validation_detail(exc: ValidationError, where: str = "") -> str:
    """One line per failed check, `field.path: message`, as pydantic words it."""
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in (where, *error["loc"]) if part != "")
        lines.append(f"{path}: {error['msg']}" if path else error["msg"])
    return "; ".join(lines)


def reply_of(model: BaseModel, reply: type[Reply]) -> Reply:
    """The protobuf reply of a response model (fields by name; None fields unset)."""
    return ParseDict(model.model_dump(mode="json", exclude_none=True), reply())


class GrpcApi:
    """The PinSearch methods over one ingress replica."""

    def __init__(self, ingress: Ingress) -> None:
        self.ingress = ingress
        self._keys = KeyCheck(ingress.api_keys)
        self._max_bytes = ingress.cfg.serve.max_body_bytes

    async def search(self, request: pb.SearchRequest, context: CallContext) -> pb.SearchResponse:
        async def answer() -> pb.SearchResponse:
            query = parsed(SearchRequest, fields_of(request))
            return reply_of(await self.ingress.search(query), pb.SearchResponse)

        return await self._call("Search", request, context, pb.SearchResponse, answer)

    async def search_batch(
        self, request: pb.BatchSearchRequest, context: CallContext
    ) -> pb.BatchSearchResponse:
        async def answer() -> pb.BatchSearchResponse:
            started = time.perf_counter()
            batch = parsed(BatchSearchRequest, {"queries": [fields_of(q) for q in request.queries]})
            outcomes = await self.ingress.search_batch(batch)
            return reply_of(batch_response(outcomes, started), pb.BatchSearchResponse)

        return await self._call("SearchBatch", request, context, pb.BatchSearchResponse, answer)

    async def get_pin(self, request: pb.GetPinRequest, context: CallContext) -> pb.PinResponse:
        async def answer() -> pb.PinResponse:
            return reply_of(await self.ingress.pin(checked_pin_id(request.pin_id)), pb.PinResponse)

        return await self._call("GetPin", request, context, pb.PinResponse, answer)

    async def related(self, request: pb.RelatedRequest, context: CallContext) -> pb.SearchResponse:
        async def answer() -> pb.SearchResponse:
            pin_id = checked_pin_id(request.pin_id)
            fields = {name: value for name, value in fields_of(request).items() if name != "pin_id"}
            found = await self.ingress.related(pin_id, parsed(RelatedQuery, fields))
            return reply_of(found, pb.SearchResponse)

        return await self._call("Related", request, context, pb.SearchResponse, answer)

    async def healthz(self, request: pb.HealthRequest, context: CallContext) -> pb.HealthResponse:
        async def answer() -> pb.HealthResponse:
            body, healthy = await self.ingress.health()
            summary = {
                "healthy": healthy,
                "status": body["status"],
                "generation": body["generation"],
                "pins": body["pins"],
                "missing_shards": body["missing_shards"],
                "body": body,
            }
            return ParseDict(summary, pb.HealthResponse())

        return await self._call(
            "Healthz", request, context, pb.HealthResponse, answer, protected=False
        )

    async def _call(
        self,
        method: str,
        request: Message,
        context: CallContext,
        reply: type[Reply],
        answer: Callable[[], Awaitable[Reply]],
        protected: bool = True,
    ) -> Reply:
        """Check the key and the request's size, answer, and turn an error into its status
        (with an empty reply, which the caller never sees: a status other than OK carries no
        message). Counted and timed in the HTTP API's metrics: endpoint the RPC's full name,
        status the gRPC code's name."""
        started = time.perf_counter()
        metadata = dict(context.invocation_metadata())
        refusal = self._keys.refusal(metadata) if protected else None
        if refusal is not None:
            answered = fail(context, reply, GRPC_CODE_OF[refusal.status], refusal.detail)
        elif request.ByteSize() > self._max_bytes:
            answered = fail(context, reply, GRPC_CODE_OF[413], too_large(self._max_bytes))
        else:
            answered = await self._answered(method, context, reply, metadata, answer)
        found, code = answered
        endpoint = f"/{SERVICE}/{method}"
        self.ingress.metrics.requests.inc(tags={"endpoint": endpoint, "status": code.name})
        self.ingress.metrics.latency.observe(
            time.perf_counter() - started, tags={"endpoint": endpoint}
        )
        return found

    async def _answered(
        self,
        method: str,
        context: CallContext,
        reply: type[Reply],
        metadata: Mapping[str, str],
        answer: Callable[[], Awaitable[Reply]],
    ) -> tuple[Reply, grpc.StatusCode]:
        """The answer and OK, or the empty reply and code of the error it raised."""
        try:
            return await answer(), grpc.StatusCode.OK
        except ServeError as exc:
            status = status_of(exc)
            if status is None:
                return internal_error(method, context, reply, metadata, exc)
            return fail(context, reply, GRPC_CODE_OF[status], str(exc))
        except Exception as exc:  # a bug: the caller gets an id to quote, the log the traceback
            return internal_error(method, context, reply, metadata, exc)


def checked_pin_id(pin_id: str) -> str:
    """The pin id, checked as HTTP checks the path parameter."""
    try:
        return PIN_ID.validate_python(pin_id)
    except ValidationError as exc:
        raise InvalidQuery(validation_detail(exc, "pin_id")) from None


def fail(
    context: CallContext, reply: type[Reply], code: grpc.StatusCode, detail: str
) -> tuple[Reply, grpc.StatusCode]:
    """End the call with `code` and `detail`: an empty reply, and the code."""
    context.set_code(code)
    context.set_details(detail)
    return reply(), code


def internal_error(
    method: str,
    context: CallContext,
    reply: type[Reply],
    metadata: Mapping[str, str],
    exc: Exception,
) -> tuple[Reply, grpc.StatusCode]:
    """INTERNAL naming a request id (the caller's x-request-id, else a new one), which the log
    line of the traceback names too."""
    request_id = metadata.get("x-request-id") or uuid.uuid4().hex
    log.error("internal error on gRPC %s (request_id %s)", method, request_id, exc_info=exc)
    context.set_trailing_metadata([("x-request-id", request_id)])
    return fail(
        context, reply, grpc.StatusCode.INTERNAL, f"internal error (request_id {request_id})"
    )
