"""The ingress deployment: route each query to a model generation, encode it, fan out to
that generation's shards, merge top-k.

Which generation answers is the traffic policy's call (serve/traffic.py): primary or canary,
with a low-confidence fallback and a shadow that is scored but never served. The warm
generations and the policy over them are the roster's (serve/generation_roster.py): each query
takes its route from it once, so a switch never splits a query.

Its HTTP surface (routes, auth, limits, error bodies, the status code of each error) is built
per replica by `serve.http_api.create_api`, once this object holds its config and handles; this
module raises pinstream errors (serve/exceptions.py) and knows nothing of HTTP.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import Any

import numpy as np
from ray.serve.handle import DeploymentHandle

from conf.config import PinstreamConfig
from serve.answer_checks import AnswerChecks
from serve.api_models import (
    BatchSearchRequest,
    PinResponse,
    RelatedQuery,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from serve.auth import api_keys
from serve.exceptions import InvalidQuery, ServeError
from serve.filters import SearchFilter
from serve.generation import GenerationClient
from serve.generation_monitor import GenerationMonitor
from serve.generation_roster import GenerationRoster
from serve.grpc_api import CallContext, GrpcApi
from serve.http_api import create_api
from serve.image_query import QueryImage
from serve.metrics import IngressMetrics
from serve.proto import pinstream_pb2 as pb
from serve.query_plan import QueryPlan, Served, serve_plans
from serve.traffic import TrafficPolicy
from streams.image_fetch import ImageFetcher
from streams.ingest_health import read_health

log = logging.getLogger(__name__)

# What an ingress is served as: an ASGI app (FastAPI's, from serve.http_api).
AsgiApp = Callable[..., Awaitable[None]]


class Ingress:
    """The public API's logic; holds a client per warm generation and the traffic policy."""

    def __init__(
        self, cfg: PinstreamConfig, encoder: DeploymentHandle, shards: list[DeploymentHandle]
    ) -> None:
        self.cfg = cfg
        self.api_keys = api_keys(cfg.serve.api_keys)  # the replica's environment adds keys
        self.metrics = IngressMetrics()
        self.monitor = GenerationMonitor(self.metrics)
        self.checks = AnswerChecks(self.monitor, cfg.serve.recall_sample_rate)
        self.image_fetcher = ImageFetcher(cfg.images)  # a search's image_url: ingest's rules
        self.roster = GenerationRoster(cfg, encoder, shards, self.metrics)
        self.roster.start_watching()

    @property
    def generation(self) -> str:
        """The generation bound into this application."""
        return self.roster.generation

    @property
    def policy(self) -> TrafficPolicy:
        """The traffic policy this replica follows now."""
        return self.roster.policy

    def __serve_build_asgi_app__(self) -> AsgiApp:
        """Serve calls this on each replica after __init__: the HTTP app over this object."""
        return create_api(self)

    async def health(self) -> tuple[dict[str, Any], bool]:
        """Per-shard stats of the primary generation, and whether every shard answered;
        the other generations of the policy are summarised under `generations`, the
        ingest job's own report (running, retrying or stopped, and why) under `ingest`."""
        policy, clients = self.policy, self.roster.clients
        (answers, missing), *rest = await asyncio.gather(
            *(clients[generation].fan_out("stats") for generation in policy.generations)
        )
        others = {
            generation: {"pins": sum(a["pins"] for a in other.values()), "missing_shards": gone}
            for generation, (other, gone) in zip(policy.generations[1:], rest, strict=True)
        }
        ingest = await asyncio.to_thread(read_health, self.cfg.storage.root)
        ingesting = ingest is None or ingest.flowing()
        body = {
            # Queries are answered while ingest retries: the code says whether they are,
            # `status` and `ingest` whether new pins still arrive.
            "status": "ok" if not missing and ingesting else "degraded",
            "ingest": ingest.summary() if ingest is not None else None,
            "generation": policy.primary,
            "pins": sum(a["pins"] for a in answers.values()),
            "shards": [answers[s] for s in sorted(answers)],
            "missing_shards": missing,
            "traffic": policy.summary(),
            "generations": others,
        }
        return body, not missing

    async def generations(self) -> dict[str, Any]:
        """The traffic policy and what each generation did since this replica started."""
        body = {"traffic": self.policy.summary(), "stats": self.monitor.snapshot()}
        if self.policy.fallback is not None:
            body["fallback"] = self.roster.fallback_bar.summary()
        return body

    async def search(self, request: SearchRequest) -> SearchResponse:
        """Similar pins for a text, a vector or an image, filtered."""
        started = time.perf_counter()
        outcome = (await self._answer([self._search_plan(request)], started))[0]
        if isinstance(outcome, ServeError):
            raise outcome
        return outcome

    async def search_batch(self, request: BatchSearchRequest) -> list[SearchResponse | ServeError]:
        """Each query's answer, in order, or the error it alone gets (a generation not served,
        a vector of the wrong size); every shard sees one call for all of them."""
        started = time.perf_counter()
        limit = self.cfg.serve.max_batch_queries
        if len(request.queries) > limit:
            raise InvalidQuery(
                f"a batch holds at most {limit} queries (serve.max_batch_queries), "
                f"got {len(request.queries)}"
            )
        plans: list[QueryPlan | ServeError] = []
        for query in request.queries:
            try:
                plans.append(self._search_plan(query, "/v1/search/batch"))
            except ServeError as exc:
                plans.append(exc)
        runnable = [plan for plan in plans if isinstance(plan, QueryPlan)]
        answered = iter(await self._answer(runnable, started))
        return [plan if isinstance(plan, ServeError) else next(answered) for plan in plans]

    async def pin(self, pin_id: str) -> PinResponse:
        """The indexed pin in the primary generation (PinNotIndexed when it is not)."""
        client = self.roster.route(self.policy.primary, pinned=True).answer
        found = await client.get(pin_id)
        return PinResponse(
            pin_id=found["pin_id"],
            title=found["title"],
            board=found["board"],
            version=found["version"],
            generation=client.generation,
        )

    async def related(self, pin_id: str, query: RelatedQuery) -> SearchResponse:
        """Pins similar to an indexed pin (the pin itself excluded), filtered."""
        started = time.perf_counter()

        async def pin_vector(client: GenerationClient) -> np.ndarray:
            vector: np.ndarray = (await client.get(pin_id))["vector"]
            return vector

        plan = QueryPlan(
            "/v1/pins/{pin_id}/related",
            self.roster.route(query.generation),
            pin_vector,
            query.k,
            SearchFilter.of(query.boards, [*query.exclude_pin_ids, pin_id]),
        )
        outcome = (await self._answer([plan], started))[0]
        if isinstance(outcome, ServeError):
            raise outcome
        return outcome

    def _search_plan(self, request: SearchRequest, endpoint: str = "/v1/search") -> QueryPlan:
        """The plan of a search by text, vector or image (GenerationNotServed, InvalidQuery)."""
        keep = SearchFilter.of(request.boards, request.exclude_pin_ids)
        if request.vector is not None:
            # A vector lives in one model's space: the generation it names, else the primary.
            vector = self._checked_vector(request.vector)
            route = self.roster.route(request.generation or self.policy.primary, pinned=True)

            async def given(client: GenerationClient) -> np.ndarray:
                return vector

            return QueryPlan(endpoint, route, given, request.k, keep)
        if request.image_url is not None or request.image_base64 is not None:
            image = QueryImage(
                self.cfg.images, self.image_fetcher, request.image_url, request.image_base64
            )

            async def pictured(client: GenerationClient) -> np.ndarray:
                return await client.encode_image(await image.pixels())

            return QueryPlan(
                endpoint, self.roster.route(request.generation), pictured, request.k, keep
            )
        text = str(request.text)

        async def encoded(client: GenerationClient) -> np.ndarray:
            return await client.encode(text)

        return QueryPlan(endpoint, self.roster.route(request.generation), encoded, request.k, keep)

    async def _answer(
        self, plans: list[QueryPlan], started: float
    ) -> list[SearchResponse | ServeError]:
        """Serve the plans, count them, start their checks, build their responses."""
        outcomes = await serve_plans(plans, self.cfg.shards.metric)
        took_s = time.perf_counter() - started
        responses: list[SearchResponse | ServeError] = []
        for plan, served in zip(plans, outcomes, strict=True):
            if isinstance(served, ServeError):
                responses.append(served)
                continue
            self._count(plan.endpoint, served, took_s)
            if plan.route.role == "primary" and plan.route.fallback is not None:
                self.roster.fallback_bar.observe(served.first_top_score, served.role == "fallback")
            if plan.route.shadow is not None:
                self.checks.shadow(plan.route.shadow, plan.run, served.answer)
            self.checks.sample_recall(served.answer, plan.k, plan.keep)
            responses.append(_response(served, took_s))
        return responses

    def _count(self, endpoint: str, served: Served, took_s: float) -> None:
        """Metrics of one answered query: partial answers, and answers by generation and role."""
        if served.answer.missing:
            self.metrics.partial_results.inc(tags={"endpoint": endpoint})
        self.monitor.answered(served.answer.generation, served.role, took_s)

    def _checked_vector(self, values: list[float]) -> np.ndarray:
        dim = self.cfg.shards.dim
        if len(values) != dim:
            raise InvalidQuery(f"vector has {len(values)} values; this index has dim {dim}")
        vector = np.asarray(values, dtype=np.float32)
        if not np.isfinite(vector).all():
            raise InvalidQuery("vector values must be finite numbers")
        return vector

    # -- gRPC: Serve's gRPC proxy calls these by RPC name; serve.grpc_api translates ------------

    @cached_property
    def _grpc(self) -> GrpcApi:
        return GrpcApi(self)

    async def Search(
        self, request: pb.SearchRequest, grpc_context: CallContext
    ) -> pb.SearchResponse:
        return await self._grpc.search(request, grpc_context)

    async def SearchBatch(
        self, request: pb.BatchSearchRequest, grpc_context: CallContext
    ) -> pb.BatchSearchResponse:
        return await self._grpc.search_batch(request, grpc_context)

    async def GetPin(self, request: pb.GetPinRequest, grpc_context: CallContext) -> pb.PinResponse:
        return await self._grpc.get_pin(request, grpc_context)

    async def Related(
        self, request: pb.RelatedRequest, grpc_context: CallContext
    ) -> pb.SearchResponse:
        return await self._grpc.related(request, grpc_context)

    async def Healthz(
        self, request: pb.HealthRequest, grpc_context: CallContext
    ) -> pb.HealthResponse:
        return await self._grpc.healthz(request, grpc_context)


def _response(served: Served, took_s: float) -> SearchResponse:
    """The response body of a served query."""
    answer = served.answer
    return SearchResponse(
        results=[SearchHit.model_validate(hit) for hit in answer.hits],
        generation=answer.generation,
        fallback_from=served.fallback_from,
        partial=bool(answer.missing),
        missing_shards=answer.missing,
        took_ms=round(took_s * 1000, 3),
    )
