"""How the ingress runs queries: each query's plan (route, vector source, k, filter), and the
run of many plans at once, so that a batch request costs one call per shard.

A single search, a related-pins query and every query of `POST /v1/search/batch` take the same
path: the answering generation of each plan gives its vector (a text or an image encoded, a
vector sent, or an indexed pin's), each generation's queries go to its shards together, and
the plans whose answer the traffic policy finds low-confidence run again, together, on the
fallback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from serve.exceptions import ImagesNotEmbedded, PinNotIndexed, ServeError, ShardUnavailable
from serve.filters import SearchFilter
from serve.generation import Answer, GenerationClient
from serve.shard_query import ShardQuery
from serve.traffic import TrafficPolicy
from shards.shard_state import Hits

log = logging.getLogger(__name__)

# The role a generation answers a query in, as /v1/generations counts them: the policy's
# primary or canary, the generation the request named ("pinned", even when that is the
# primary), or the fallback that took over a low-confidence answer.
Role = Literal["primary", "canary", "pinned", "fallback"]
# Where a query's vector comes from, in a given generation's space.
VectorSource = Callable[[GenerationClient], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class Route:
    """Where one query goes: who answers first and in which role, who may take over a
    low-confidence answer, who shadows (a pinned query has neither)."""

    answer: GenerationClient
    role: Role
    fallback: GenerationClient | None = None
    shadow: GenerationClient | None = None
    policy: TrafficPolicy | None = None
    fallback_bar: float = 0.0  # the policy's fixed bar, or the one its share gives now

    def fallback_for(self, first: Answer, metric: str) -> GenerationClient | None:
        """The generation to ask instead of `first`: the fallback when the policy finds `first`
        low-confidence, else None."""
        policy = self.policy
        if policy is None or not policy.low_confidence(first.top_score, metric, self.fallback_bar):
            return None
        return self.fallback


@dataclass(frozen=True)
class QueryPlan:
    """One query: its endpoint (for metrics), route, vector source, k and filter."""

    endpoint: str
    route: Route
    vector_of: VectorSource
    k: int
    keep: SearchFilter

    async def run(self, client: GenerationClient) -> Answer:
        """This query alone on `client`'s generation (the shadow and checks run it so)."""
        return (await run_on([(client, self)]))[0]


@dataclass(frozen=True)
class Served:
    """The answer a query gets, the role it was given in, and whose low-confidence answer
    it replaced (None unless the fallback answered)."""

    answer: Answer
    role: Role
    fallback_from: str | None = None
    first_top_score: float | None = None  # of the route's own answer, fallback or not


async def serve_plans(plans: Sequence[QueryPlan], metric: str) -> list[Served | ServeError]:
    """Each plan's answer (or the error it alone gets), in order: the route's answer, or the
    fallback's when the policy finds it low-confidence and the fallback can answer."""
    firsts = await _run_each([(plan.route.answer, plan) for plan in plans])
    served: list[Served | ServeError] = [
        first
        if isinstance(first, ServeError)
        else Served(first, plan.route.role, first_top_score=first.top_score)
        for plan, first in zip(plans, firsts, strict=True)
    ]
    retries = [
        (position, fallback)
        for position, first in enumerate(firsts)
        if isinstance(first, Answer)
        and (fallback := plans[position].route.fallback_for(first, metric)) is not None
    ]
    seconds = await _run_each([(fallback, plans[position]) for position, fallback in retries])
    for (position, fallback), second in zip(retries, seconds, strict=True):
        # The fallback cannot answer this query (a pin not in it yet, an image its model does
        # not embed): the first answer stands.
        if isinstance(second, (PinNotIndexed, ShardUnavailable, ImagesNotEmbedded)):
            log.info("fallback %s not used: %s", fallback.generation, second)
        elif isinstance(second, ServeError):
            served[position] = second
        else:
            first = firsts[position]
            assert isinstance(first, Answer)
            served[position] = Served(
                second, "fallback", fallback_from=first.generation, first_top_score=first.top_score
            )
    return served


async def run_on(pairs: Sequence[tuple[GenerationClient, QueryPlan]]) -> list[Answer]:
    """Run each plan on its generation; a ServeError of any plan is raised."""
    answers = await _run_each(pairs)
    for answer in answers:
        if isinstance(answer, ServeError):
            raise answer
    return [answer for answer in answers if isinstance(answer, Answer)]


async def _run_each(
    pairs: Sequence[tuple[GenerationClient, QueryPlan]],
) -> list[Answer | ServeError]:
    """Each plan's answer on its generation, or the ServeError it got (a bug is raised): every
    vector first, then one search per generation for all of its plans."""
    vectors = await asyncio.gather(
        *(plan.vector_of(client) for client, plan in pairs), return_exceptions=True
    )
    errors: dict[int, ServeError] = {}
    by_client: dict[GenerationClient, list[tuple[int, np.ndarray]]] = {}
    for position, vector in enumerate(vectors):
        if isinstance(vector, ServeError):
            errors[position] = vector
        elif isinstance(vector, BaseException):
            raise vector  # a bug, in an encoder, a shard or here
        else:
            by_client.setdefault(pairs[position][0], []).append((position, vector))
    searched = await asyncio.gather(
        *(
            _search(client, [(vector, pairs[position][1]) for position, vector in items])
            for client, items in by_client.items()
        )
    )
    answers: dict[int, Answer] = {}
    for (client, items), found in zip(by_client.items(), searched, strict=True):
        for (position, vector), (hits, missing) in zip(items, found, strict=True):
            answers[position] = Answer(client, vector, hits, missing)
    return [errors[p] if p in errors else answers[p] for p in range(len(pairs))]


async def _search(
    client: GenerationClient, queries: list[tuple[np.ndarray, QueryPlan]]
) -> list[tuple[Hits, list[int]]]:
    """One query: the shards' single search (batched there across requests); several: one
    batch call per shard."""
    if len(queries) == 1:
        vector, plan = queries[0]
        return [await client.search(vector, plan.k, plan.keep)]
    return await client.search_many([ShardQuery(v, plan.k, plan.keep) for v, plan in queries])
