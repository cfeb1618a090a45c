"""The fan-out under centroid routing: a query asks only its target shards, exact search and
get() ask every shard, and a batch calls each shard once with only its own queries."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from conf.config import PinstreamConfig, ShardsConfig
from serve.exceptions import PinNotIndexed
from serve.filters import SearchFilter
from serve.generation import GenerationClient
from serve.metrics import IngressMetrics
from serve.shard_query import ShardQuery, answer_queries
from shards.router import train_router
from shards.shard_state import ShardState
from tests.unit.serve.test_http_api import FakeHandle, RecordingMetric, pin_rows

DIM, SHARDS = 16, 4
CENTERS = np.random.default_rng(1).standard_normal((8, DIM))
LABELS = np.random.default_rng(2).integers(8, size=400)
RAW = CENTERS[LABELS] + 0.3 * np.random.default_rng(3).standard_normal((400, DIM))
VECTORS = (RAW / np.linalg.norm(RAW, axis=1, keepdims=True)).astype(np.float32)
PINS = [f"pin-{i}" for i in range(len(VECTORS))]
ROUTER = train_router(VECTORS, SHARDS, groups=16, metric="ip", nprobe=2)
OWNER = ROUTER.owner_shards(VECTORS)


class RoutedShard:
    """The pins the router places on `shard`, searched as a replica searches; records calls."""

    def __init__(self, shard: int) -> None:
        self.calls: list[int] = []  # queries per search call
        self.state = ShardState(ShardsConfig(dim=DIM))
        mine = [PINS[i] for i in np.flatnonzero(shard == OWNER)]
        vectors = VECTORS[shard == OWNER]
        self.state.apply_rows(pin_rows(mine, vectors, mine, dict.fromkeys(mine, "b")))

    def search(self, query: ShardQuery) -> Any:
        return self.search_batch([query])[0]

    def search_batch(self, queries: list[ShardQuery]) -> Any:
        self.calls.append(len(queries))
        return answer_queries(self.state, queries)

    def get(self, pin_id: str) -> dict[str, Any] | None:
        return self.state.get(pin_id)


def client() -> tuple[GenerationClient, list[RoutedShard]]:
    shards = [RoutedShard(s) for s in range(SHARDS)]
    metrics = IngressMetrics()
    for name in ("shard_latency", "shard_failures", "shard_hedges", "fan_out_batch_size"):
        setattr(metrics, name, RecordingMetric())
    settings = PinstreamConfig().serve
    handles = [FakeHandle(shard) for shard in shards]
    routed = GenerationClient("g", FakeHandle(None), handles, settings, "ip", metrics, ROUTER)  # type: ignore[arg-type]
    return routed, shards


def exact(query: np.ndarray, k: int, shards: list[int]) -> list[str]:
    on = np.flatnonzero(np.isin(OWNER, shards))
    order = np.argsort(-(VECTORS[on] @ query), kind="stable")[:k]
    return [PINS[on[j]] for j in order]


def test_a_query_asks_only_its_target_shards_and_gets_their_exact_top_k() -> None:
    routed, shards = client()
    query = VECTORS[17]
    (targets,) = ROUTER.shards_for(query[None, :])
    assert 0 < len(targets) < SHARDS, "the test needs a query that skips a shard"
    hits, missing = asyncio.run(routed.search(query, 10, SearchFilter()))
    assert missing == []
    assert [hit["pin_id"] for hit in hits] == exact(query, 10, targets.tolist())
    assert [bool(s.calls) for s in shards] == [s in targets for s in range(SHARDS)]


def test_exact_search_and_get_ask_every_shard() -> None:
    routed, shards = client()
    query = VECTORS[17]
    hits, _ = asyncio.run(routed.search(query, 10, SearchFilter(), exact=True))
    assert [hit["pin_id"] for hit in hits] == exact(query, 10, list(range(SHARDS)))
    assert all(s.calls == [1] for s in shards)
    for i in (0, 150, 399):  # pins on different shards
        assert asyncio.run(routed.get(PINS[i]))["pin_id"] == PINS[i]
    with pytest.raises(PinNotIndexed):
        asyncio.run(routed.get("never-indexed"))


def test_a_batch_calls_each_shard_once_with_its_own_queries() -> None:
    routed, shards = client()
    queries = [ShardQuery(VECTORS[i], 5) for i in range(0, 400, 23)]
    alone = [asyncio.run(routed.search(q.vector, q.k, q.keep))[0] for q in queries]
    for shard in shards:
        shard.calls.clear()
    answers = asyncio.run(routed.search_many(queries))
    assert [hits for hits, _ in answers] == alone
    targets = ROUTER.shards_for(np.stack([q.vector for q in queries]))
    for s, shard in enumerate(shards):
        assert shard.calls == [sum(s in t for t in targets)] or (
            shard.calls == [] and not any(s in t for t in targets)
        )


def test_concurrent_single_searches_go_out_together_each_with_its_own_answer() -> None:
    routed, shards = client()
    queries = [(VECTORS[i], (3, 5, 8)[i % 3]) for i in range(0, 400, 17)]
    alone = [asyncio.run(routed.search(vector, k, SearchFilter()))[0] for vector, k in queries]
    for shard in shards:
        shard.calls.clear()
    batch_sizes: list[float] = routed.metrics.fan_out_batch_size.values  # type: ignore[attr-defined]
    assert batch_sizes == [1] * len(queries)
    batch_sizes.clear()

    async def together() -> list[Any]:
        found = await asyncio.gather(
            *(routed.search(vector, k, SearchFilter()) for vector, k in queries)
        )
        return [hits for hits, _ in found]

    assert asyncio.run(together()) == alone
    targets = ROUTER.shards_for(np.stack([vector for vector, _ in queries]))
    for s, shard in enumerate(shards):
        asked = sum(s in t for t in targets)
        assert shard.calls == ([asked] if asked else []), "one call per shard, its own queries"
    assert batch_sizes == [len(queries)]
