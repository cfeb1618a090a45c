"""Prometheus metrics of the query path, exported through Ray's metrics agent.

Metric objects are made inside the replicas (not at import), where Ray is running.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ray.util import metrics
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
FRACTION_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]
BATCH_SIZE_BUCKETS = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
UNMATCHED = "unmatched"


class IngressMetrics:
    """What the ingress counts: requests and latency per endpoint, shard calls, partial answers."""

    def __init__(self) -> None:
        self.requests = metrics.Counter(
            "pinstream_requests",
            description="requests answered by the ingress, by endpoint and status (HTTP: the "
            "route and status code; gRPC: /pinstream.v1.PinSearch/<RPC> and the code's name)",
            tag_keys=("endpoint", "status"),
        )
        self.latency = metrics.Histogram(
            "pinstream_request_latency_seconds",
            description="time the ingress took to answer, by endpoint (HTTP route or gRPC RPC)",
            boundaries=LATENCY_BUCKETS_S,
            tag_keys=("endpoint",),
        )
        self.shard_latency = metrics.Histogram(
            "pinstream_shard_latency_seconds",
            description="time a shard took to answer the ingress, by shard and method",
            boundaries=LATENCY_BUCKETS_S,
            tag_keys=("shard", "method"),
        )
        self.shard_failures = metrics.Counter(
            "pinstream_shard_failures",
            description="shard calls that timed out or failed, by shard, method and reason",
            tag_keys=("shard", "method", "reason"),
        )
        self.shard_hedges = metrics.Counter(
            "pinstream_shard_hedges",
            description="shard calls sent to a second replica because the first was slower "
            "than the shard's hedge quantile, by shard and method",
            tag_keys=("shard", "method"),
        )
        self.generation_queries = metrics.Counter(
            "pinstream_generation_queries",
            description="queries answered, by model generation and role "
            "(primary, canary, fallback, pinned)",
            tag_keys=("generation", "role"),
        )
        self.generation_latency = metrics.Histogram(
            "pinstream_generation_latency_seconds",
            description="time to answer a query, by the generation that answered",
            boundaries=LATENCY_BUCKETS_S,
            tag_keys=("generation",),
        )
        self.shadow_overlap = metrics.Histogram(
            "pinstream_shadow_overlap",
            description="share of the served top-k that the shadow generation also returned",
            boundaries=FRACTION_BUCKETS,
            tag_keys=("generation",),
        )
        self.online_recall = metrics.Histogram(
            "pinstream_online_recall",
            description="recall@k of sampled live queries against exact search, by generation",
            boundaries=FRACTION_BUCKETS,
            tag_keys=("generation",),
        )
        self.fallback_bar = metrics.Gauge(
            "pinstream_fallback_bar",
            description="the score bar under which the primary's answers go to the fallback "
            "(fixed, or set by the policy's fallback share), per ingress replica",
            tag_keys=("primary", "fallback"),
        )
        self.fallback_share = metrics.Gauge(
            "pinstream_fallback_share",
            description="share of the primary's recent queries the fallback answered, per "
            "ingress replica (the policy's fallback_share is the share wanted)",
            tag_keys=("primary", "fallback"),
        )
        self.fan_out_batch_size = metrics.Histogram(
            "pinstream_fan_out_batch_size",
            description="single searches that reached an ingress replica together and went "
            "to the shards as one call per shard, by generation",
            boundaries=BATCH_SIZE_BUCKETS,
            tag_keys=("generation",),
        )
        self.partial_results = metrics.Counter(
            "pinstream_partial_results",
            description="answers that left out at least one shard, by endpoint",
            tag_keys=("endpoint",),
        )


def encoder_batch_size_histogram() -> metrics.Histogram:
    """Sizes of the batches the query encoder runs (dynamic batching at work)."""
    return metrics.Histogram(
        "pinstream_encoder_batch_size",
        description="query texts per encoder batch",
        boundaries=BATCH_SIZE_BUCKETS,
    )


def shard_batch_size_histogram() -> metrics.Histogram:
    """Sizes of the query batches a shard replica searches (cross-request batching at work)."""
    return metrics.Histogram(
        "pinstream_shard_batch_size",
        description="queries per batch a shard replica searched",
        boundaries=BATCH_SIZE_BUCKETS,
    )


def endpoint_of(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The route template a request matches (low-cardinality label), or 'unmatched'."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return str(getattr(route, "path", UNMATCHED))
    return UNMATCHED


class RequestMetrics:
    """ASGI middleware: counts every HTTP request by endpoint and status and times it."""

    def __init__(self, app: ASGIApp, metrics: IngressMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's route list, read at request time

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before it answers

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            endpoint = endpoint_of(self.routes, scope)
            self.metrics.requests.inc(tags={"endpoint": endpoint, "status": str(status)})
            self.metrics.latency.observe(time.perf_counter() - started, tags={"endpoint": endpoint})
