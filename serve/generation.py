"""One warm index generation as the ingress sees it: its query encoder and its shards.

A generation is one model version with its own shards and embeddings log. The ingress's own
generation is bound into its application (serve/app.py); every other warm generation runs as
an application of its own, `generation_app_name(cfg, generation)`, with the same deployment
names, and the ingress reaches it by name when the traffic policy sends it a query.

A shard that does not answer in time, or whose replica is gone, is left out of an answer
(`missing`); any other error of a shard call is a bug and fails the query. Searches of a shard
that runs two or more replicas are hedged (serve/hedging.py).
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.exceptions import RayActorError
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle

from conf.config import ServeConfig
from serve.exceptions import ImagesNotEmbedded, PinNotIndexed, ShardUnavailable
from serve.fan_out_batcher import FanOutBatcher
from serve.filters import SearchFilter
from serve.hedging import LatencyWindow, first_answer
from serve.metrics import IngressMetrics
from serve.shard_query import ShardQuery
from shards.router import CentroidRouter
from shards.shard_state import Hits
from shards.top_k import merge_top_k
from streams.routing import shard_of

log = logging.getLogger(__name__)


# What a shard call raises when the shard did not answer: a timeout (asyncio's, or Ray's
# GetTimeoutError: both are TimeoutError), a replica that died or cannot be reached
# (RayActorError: ActorDiedError, ActorUnavailableError), or a deployment with no replica
# left to take the call (Serve's DeploymentUnavailableError, ReplicaUnavailableError).
SHARD_LOST: tuple[type[Exception], ...] = (
    TimeoutError,
    RayActorError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
)
# Shard methods that only read, and may therefore be sent to a second replica.
HEDGED_METHODS = frozenset({"search", "search_batch"})


class GenerationClient:
    """Encodes, fans out to every shard of one generation within a deadline, merges top-k."""

    def __init__(
        self,
        generation: str,
        encoder: DeploymentHandle,
        shards: list[DeploymentHandle],
        settings: ServeConfig,
        metric: str,
        metrics: IngressMetrics,
        router: CentroidRouter | None = None,
    ) -> None:
        self.generation = generation
        self.router = router  # None: hash sharding, every query asks every shard
        self.encoder = encoder
        self.shards = shards
        self.settings = settings
        self.metric = metric
        self.metrics = metrics
        # The shards that run 2 or more replicas now (the ingress refreshes it): only their
        # searches are hedged.
        self.hedge_shards: frozenset[int] = frozenset()
        self._latency = {
            (shard, method): LatencyWindow()
            for shard in range(len(shards))
            for method in HEDGED_METHODS
        }
        # Single searches that reach the ingress together fan out together.
        self._together: FanOutBatcher[ShardQuery, tuple[Hits, list[int]]] = FanOutBatcher(
            self._search_together, settings.fan_out_max_batch_size, settings.fan_out_max_wait_s
        )

    async def encode(self, text: str) -> np.ndarray:
        """The query vector of text in this generation's space."""
        vector: np.ndarray = await self.encoder.encode.remote(text)
        return vector

    async def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        """The query vector of an (s, s, 3) uint8 RGB image in this generation's space, from
        its model's image tower; ImagesNotEmbedded when its model has none."""
        vector: np.ndarray | None = await self.encoder.encode_image.remote(pixels)
        if vector is None:
            raise ImagesNotEmbedded(self.generation)
        return vector

    def targets(self, vectors: np.ndarray, exact: bool = False) -> list[list[int]]:
        """The shards each query vector is sent to: with centroid routing those owning its
        nearest groups, else every shard. Exact search (the recall monitor's oracle) asks
        every shard, so that it also measures what routing leaves out."""
        if self.router is None or exact:
            return [list(range(len(self.shards)))] * len(vectors)
        return [shards.tolist() for shards in self.router.shards_for(vectors)]

    async def search(
        self, vector: np.ndarray, k: int, keep: SearchFilter, exact: bool = False
    ) -> tuple[Hits, list[int]]:
        """Merged top-k over the query's shards that answered, and those that did not; sent
        with the other searches of this generation that reach the ingress at the same time
        (serve/fan_out_batcher.py)."""
        return await self._together.submit(ShardQuery(vector, k, keep, exact))

    async def _search_together(self, queries: list[ShardQuery]) -> list[tuple[Hits, list[int]]]:
        """A query alone goes to its shards as one search, several as one batch per shard."""
        self.metrics.fan_out_batch_size.observe(len(queries), tags={"generation": self.generation})
        if len(queries) > 1:
            return await self.search_many(queries)
        (query,) = queries
        (shards,) = self.targets(query.vector[None, :], query.exact)
        answers, missing = await self.fan_out("search", {shard: (query,) for shard in shards})
        return [(self._merged(list(answers.values()), query.k), missing)]

    async def search_many(self, queries: list[ShardQuery]) -> list[tuple[Hits, list[int]]]:
        """Each query's merged top-k and the shards of its own that did not answer, in order:
        one call per shard, holding every query that shard is a target of."""
        every = list(range(len(self.shards)))
        routed = self.targets(np.stack([query.vector for query in queries]))
        routes = [every if q.exact else r for q, r in zip(queries, routed, strict=True)]
        asked: dict[int, list[int]] = {}  # shard -> the positions of its queries
        for position, shards in enumerate(routes):
            for shard in shards:
                asked.setdefault(shard, []).append(position)
        calls = {shard: ([queries[p] for p in positions],) for shard, positions in asked.items()}
        answers, missing = await self.fan_out("search_batch", calls)
        per_query: list[list[Hits]] = [[] for _ in queries]
        for shard, found in answers.items():
            for position, hits in zip(asked[shard], found, strict=True):
                per_query[position].append(hits)
        return [
            (self._merged(hits, query.k), [shard for shard in missing if shard in route])
            for hits, query, route in zip(per_query, queries, routes, strict=True)
        ]

    def _merged(self, per_shard: list[Hits], k: int) -> Hits:
        """The best k of the shards' hits, best first."""
        hits = [hit for shard_hits in per_shard for hit in shard_hits]
        scores = np.array([[hit["score"] for hit in hits]], dtype=np.float32).reshape(1, -1)
        positions = np.arange(len(hits), dtype=np.int64).reshape(1, -1)
        _, best = merge_top_k([(scores, positions)], 1, k, self.metric)
        return [hits[i] for i in best[0].tolist() if i >= 0]

    async def get(self, pin_id: str) -> dict[str, Any]:
        """The indexed pin with its vector; PinNotIndexed when absent, ShardUnavailable when
        a shard that may hold it did not answer. With centroid routing a pin's shard follows
        its vector, so every shard is asked (a pin is live on one at most)."""
        if self.router is None:
            shards = [shard_of(pin_id, len(self.shards))]
        else:
            shards = list(range(len(self.shards)))
        answers, missing = await self.fan_out("get", {shard: (pin_id,) for shard in shards})
        found = [pin for pin in answers.values() if pin is not None]
        if found:
            return dict(found[0])
        if missing:
            message = f"the shard holding pin {pin_id!r} did not answer"
            raise ShardUnavailable(missing[0], message)
        raise PinNotIndexed(pin_id, self.generation)

    async def fan_out(
        self, method: str, calls: dict[int, tuple[Any, ...]] | None = None
    ) -> tuple[dict[int, Any], list[int]]:
        """Call `method` on each shard of `calls` with its arguments (None: every shard, no
        arguments), each within the shard timeout; return the answers by shard and the shards
        that did not answer. Any other failure of a shard call is raised."""
        if calls is None:
            calls = {shard: () for shard in range(len(self.shards))}
        shards = sorted(calls)
        results = await asyncio.gather(
            *(self.call_shard(shard, method, *calls[shard]) for shard in shards),
            return_exceptions=True,  # every call ends before any error is looked at
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, ShardUnavailable):
                raise result  # a bug, in the shard or here: the query fails
        answered = zip(shards, results, strict=True)
        answers = {s: r for s, r in answered if not isinstance(r, ShardUnavailable)}
        missing = [
            s for s, r in zip(shards, results, strict=True) if isinstance(r, ShardUnavailable)
        ]
        return answers, missing

    async def call_shard(self, shard: int, method: str, *args: Any) -> Any:
        """One shard call within serve.shard_timeout_s, timed; failures counted. A shard that
        did not answer raises ShardUnavailable; any other error is raised as it came."""
        started = time.perf_counter()
        handle_method = getattr(self.shards[shard], method)
        tags = {"shard": str(shard), "method": method}
        hedged = []

        def hedge() -> None:
            hedged.append(True)
            self.metrics.shard_hedges.inc(tags=tags)

        try:
            call = first_answer(
                lambda: handle_method.remote(*args), self._hedge_after(shard, method), hedge
            )
            result = await asyncio.wait_for(call, self.settings.shard_timeout_s)
        except SHARD_LOST as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "unavailable"
            self._failed(shard, method, reason, exc)
            message = f"shard {shard} of {self.generation!r} did not answer {method!r}"
            raise ShardUnavailable(shard, message) from exc
        except Exception as exc:
            self._failed(shard, method, "error", exc)
            raise
        took_s = time.perf_counter() - started
        if method in HEDGED_METHODS:
            self._latency[shard, method].observe(took_s, bool(hedged))
        self.metrics.shard_latency.observe(took_s, tags=tags)
        return result

    def _hedge_after(self, shard: int, method: str) -> float | None:
        """How long a call may run before it is hedged; None: not hedged (not a search, one
        replica, hedging off, or the shard's hedge budget spent)."""
        quantile = self.settings.hedge_quantile
        if method not in HEDGED_METHODS or shard not in self.hedge_shards or quantile == 0:
            return None
        latency = self._latency[shard, method]
        if not latency.may_hedge():
            return None
        return latency.quantile(quantile, self.settings.hedge_min_samples)

    def _failed(self, shard: int, method: str, reason: str, exc: Exception) -> None:
        tags = {"shard": str(shard), "method": method, "reason": reason}
        self.metrics.shard_failures.inc(tags=tags)
        log.warning("%s shard %d: %s %s: %r", self.generation, shard, method, reason, exc)


@dataclass(frozen=True)
class Answer:
    """One query run on one generation: its query vector, merged hits and missing shards."""

    client: GenerationClient
    vector: np.ndarray
    hits: Hits
    missing: list[int]

    @property
    def generation(self) -> str:
        return self.client.generation

    @property
    def top_score(self) -> float | None:
        """The best hit's score, None without hits."""
        return self.hits[0]["score"] if self.hits else None


# The deployments of a pinstream Serve application: the one source of their names.
INGRESS_DEPLOYMENT = "ingress"
ENCODER_DEPLOYMENT = "query-encoder"


def shard_deployment_name(shard: int) -> str:
    """The Serve deployment name of a shard."""
    return f"shard-{shard}"


def generation_app_name(app_name: str, generation: str) -> str:
    """The Serve application that runs a generation beside the ingress's own."""
    return f"{app_name}-gen-{generation}"


def recall_at_k(served: Hits, exact: Hits) -> float:
    """Share of the exact top-k that the served answer holds (1.0 when exact is empty)."""
    if not exact:
        return 1.0
    served_ids = {hit["pin_id"] for hit in served}
    return sum(hit["pin_id"] in served_ids for hit in exact) / len(exact)
