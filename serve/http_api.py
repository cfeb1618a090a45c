"""The HTTP API (FastAPI): routes, API keys, body limit, metrics and error bodies.

Built on each ingress replica by `Ingress.__serve_build_asgi_app__`, so the
middleware gets the replica's config (and its environment's API keys). The ingress
raises pinstream errors; `STATUS_OF` below is the one place that gives each its status
code, and any other exception is a bug: a 500 naming a request id.
"""

import logging
import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse

from serve.api_models import (
    MAX_PIN_ID_CHARS,
    BatchSearchItem,
    BatchSearchRequest,
    BatchSearchResponse,
    ErrorResponse,
    PinResponse,
    QueryError,
    RelatedQuery,
    SearchRequest,
    SearchResponse,
)
from serve.auth import ApiKeyAuth
from serve.body_limit import BodyLimit
from serve.exceptions import (
    GenerationNotServed,
    InvalidQuery,
    PinNotIndexed,
    ServeError,
    ShardUnavailable,
)
from serve.fast_json import FastJsonRoute
from serve.metrics import RequestMetrics

if TYPE_CHECKING:
    from serve.ingress import Ingress

log = logging.getLogger(__name__)

DESCRIPTION = """Similar pins, fresh: search by text, by vector, by image, or for an indexed pin.

When API keys are set, every /v1 request needs one, as `Authorization: Bearer <key>`
or `X-API-Key: <key>` (401 without, 403 with a wrong one); /healthz and these docs
are open. A shard that does not answer in time is left out: `partial: true` and
`missing_shards` say which."""

PinIdPath = Annotated[str, Path(min_length=1, max_length=MAX_PIN_ID_CHARS)]
ERROR_MEANINGS = {
    401: "no API key",
    403: "a wrong API key",
    404: "the pin is not indexed",
    409: "a generation that is not served",
    413: "a request body over the limit",
    500: "an internal error (the body names the request id to look for in the logs)",
    503: "the shard holding the pin did not answer",
}


# The status code of each error the ingress raises on purpose (a subclass takes its base's).
STATUS_OF: dict[type[ServeError], int] = {
    PinNotIndexed: 404,
    GenerationNotServed: 409,
    InvalidQuery: 422,
    ShardUnavailable: 503,
}


def status_of(exc: ServeError) -> int | None:
    """The status code of a pinstream error, None for one the API does not expect (a 500)."""
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return None


def batch_response(
    outcomes: list[SearchResponse | ServeError], started: float
) -> BatchSearchResponse:
    """The body of a batch search: an item per query, in order, timed from `started`."""
    return BatchSearchResponse(
        results=[batch_item(outcome) for outcome in outcomes],
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def batch_item(outcome: SearchResponse | ServeError) -> BatchSearchItem:
    """A batch query's item: its response, or its error with the status it alone would get.
    An error the API does not expect is a bug: raised, so the request gets a 500."""
    if not isinstance(outcome, ServeError):
        return BatchSearchItem(response=outcome)
    status = status_of(outcome)
    if status is None:
        raise outcome
    return BatchSearchItem(error=QueryError(status=status, detail=str(outcome)))


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error codes a route can answer (besides 422)."""
    common = (401, 403, 413, 500)
    return {
        code: {"model": ErrorResponse, "description": ERROR_MEANINGS[code]}
        for code in sorted({*common, *codes})
    }


def create_api(ingress: "Ingress") -> FastAPI:
    """The FastAPI app of one ingress replica."""
    settings = ingress.cfg.serve
    api = FastAPI(title="pinstream", version="0.2.0", description=DESCRIPTION)
    api.router.route_class = FastJsonRoute  # JSON bodies parsed by pydantic (serve/fast_json.py)

    @api.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 with per-shard stats when every shard answers, else 503."""
        body, healthy = await ingress.health()
        return JSONResponse(body, status_code=200 if healthy else 503)

    @api.post("/v1/search", response_model=SearchResponse, responses=errors(409))
    async def search(request: SearchRequest) -> SearchResponse:
        """Similar pins for a text, a vector or an image (`image_url` or `image_base64`);
        `boards` and `exclude_pin_ids` filter them."""
        return await ingress.search(request)

    @api.post("/v1/search/batch", response_model=BatchSearchResponse, responses=errors())
    async def search_batch(request: BatchSearchRequest) -> BatchSearchResponse:
        """Many searches at once, answered in order; a query that fails alone gets its own
        `error` (status and detail as POST /v1/search would answer it), the others answer.
        Each shard sees one call for the whole batch."""
        started = time.perf_counter()
        return batch_response(await ingress.search_batch(request), started)

    @api.get("/v1/pins/{pin_id}", response_model=PinResponse, responses=errors(404, 503))
    async def pin(pin_id: PinIdPath) -> PinResponse:
        """The indexed pin, or 404."""
        return await ingress.pin(pin_id)

    @api.get(
        "/v1/pins/{pin_id}/related", response_model=SearchResponse, responses=errors(404, 409, 503)
    )
    async def related(pin_id: PinIdPath, query: Annotated[RelatedQuery, Query()]) -> SearchResponse:
        """Pins similar to an indexed pin, itself excluded (lists as repeated parameters)."""
        return await ingress.related(pin_id, query)

    @api.get("/v1/generations")
    async def generations() -> dict[str, Any]:
        """The traffic policy, and per generation: answers by role, fallbacks, shadow overlap,
        online recall (counted by the ingress replica that answers this request)."""
        return await ingress.generations()

    @api.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # The caller gets an id to quote, never the traceback; the log gets the traceback.
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        log.error(
            "internal error on %s %s (request_id %s)",
            request.method,
            request.url.path,
            request_id,
            exc_info=exc,
        )
        return JSONResponse({"detail": "internal error", "request_id": request_id}, 500)

    @api.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        # A domain error the caller can act on: its message is the detail, never a traceback.
        status = status_of(exc)
        if status is None:
            return await internal_error(request, exc)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    # Outermost first: every request is counted, then authenticated, then size-checked.
    api.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    api.add_middleware(ApiKeyAuth, keys=ingress.api_keys)
    api.add_middleware(RequestMetrics, metrics=ingress.metrics, routes=api.router.routes)
    return api
