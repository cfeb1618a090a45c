"""The ingress deployment: encode the query, fan out to every shard, merge top-k.

Its HTTP surface (routes, auth, limits, error bodies) is built per replica by
`serve.http_api.create_api`, once this object holds its config and handles.
"""

import asyncio
import heapq
import logging
import time
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from ray.serve.handle import DeploymentHandle

from conf.config import PinstreamConfig
from serve.api_models import PinResponse, RelatedQuery, SearchRequest, SearchResponse
from serve.auth import api_keys
from serve.filters import SearchFilter
from serve.http_api import create_api
from serve.metrics import IngressMetrics
from shards.routing import shard_of

log = logging.getLogger(__name__)


class Ingress:
    """The public API's logic; holds handles to the query encoder and the shard deployments."""

    def __init__(
        self, cfg: PinstreamConfig, encoder: DeploymentHandle, shards: list[DeploymentHandle]
    ) -> None:
        self.cfg = cfg
        self.encoder = encoder
        self.shards = shards
        self.generation = cfg.model.generation
        self.api_keys = api_keys(cfg.serve.api_keys)  # the replica's environment adds keys
        self.metrics = IngressMetrics()

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Serve calls this on each replica after __init__: the HTTP app over this object."""
        return create_api(self)

    async def health(self) -> tuple[dict[str, Any], bool]:
        """Per-shard stats, and whether every shard answered."""
        answers, missing = await self._fan_out("stats")
        body = {
            "status": "ok" if not missing else "degraded",
            "generation": self.generation,
            "pins": sum(a["pins"] for a in answers.values()),
            "shards": [answers[s] for s in sorted(answers)],
            "missing_shards": missing,
        }
        return body, not missing

    async def search(self, request: SearchRequest) -> SearchResponse:
        """Similar pins for a text or a vector, filtered."""
        started = time.perf_counter()
        self._check_generation(request.generation)
        if request.vector is not None:
            vector = self._checked_vector(request.vector)
        else:
            vector = await self.encoder.encode.remote(request.text)
        keep = SearchFilter.of(request.boards, request.exclude_pin_ids)
        return await self._search("/v1/search", vector, request.k, keep, started)

    async def pin(self, pin_id: str) -> PinResponse:
        """The indexed pin, or 404."""
        found = await self._get(pin_id)
        return PinResponse(
            pin_id=found["pin_id"],
            title=found["title"],
            board=found["board"],
            version=found["version"],
            generation=self.generation,
        )

    async def related(self, pin_id: str, query: RelatedQuery) -> SearchResponse:
        """Pins similar to an indexed pin (the pin itself excluded), filtered."""
        started = time.perf_counter()
        self._check_generation(query.generation)
        found = await self._get(pin_id)
        keep = SearchFilter.of(query.boards, [*query.exclude_pin_ids, pin_id])
        return await self._search(
            "/v1/pins/{pin_id}/related", found["vector"], query.k, keep, started
        )

    # -- internals -----------------------------------------------------------------------------

    def _check_generation(self, requested: str | None) -> None:
        if requested is not None and requested != self.generation:
            raise HTTPException(
                409,
                f"generation {requested!r} is not served: this deployment serves only "
                f"{self.generation!r} (one model generation exists today)",
            )

    def _checked_vector(self, values: list[float]) -> np.ndarray:
        dim = self.cfg.shards.dim
        if len(values) != dim:
            raise HTTPException(422, f"vector has {len(values)} values; this index has dim {dim}")
        vector = np.asarray(values, dtype=np.float32)
        if not np.isfinite(vector).all():
            raise HTTPException(422, "vector values must be finite numbers")
        return vector

    async def _get(self, pin_id: str) -> dict[str, Any]:
        shard = shard_of(pin_id, len(self.shards))
        try:
            found = await self._call_shard(shard, "get", pin_id)
        except Exception as exc:  # a timeout or a dead replica: the pin cannot be read now
            raise HTTPException(503, f"the shard holding pin {pin_id!r} did not answer") from exc
        if found is None:
            raise HTTPException(404, f"pin {pin_id!r} is not indexed")
        return found

    async def _search(
        self, endpoint: str, vector: np.ndarray, k: int, keep: SearchFilter, started: float
    ) -> SearchResponse:
        answers, missing = await self._fan_out("search", vector, k, keep)
        hits = [hit for per_shard in answers.values() for hit in per_shard[0]]
        if self.cfg.shards.metric == "ip":
            best = heapq.nlargest(k, hits, key=lambda h: h["score"])
        else:
            best = heapq.nsmallest(k, hits, key=lambda h: h["score"])
        if missing:
            self.metrics.partial_results.inc(tags={"endpoint": endpoint})
        return SearchResponse(
            results=best,
            generation=self.generation,
            partial=bool(missing),
            missing_shards=missing,
            took_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def _fan_out(self, method: str, *args: Any) -> tuple[dict[int, Any], list[int]]:
        """Call `method` on every shard with a per-shard timeout; return answers and the missing."""
        results = await asyncio.gather(
            *(self._call_shard(shard, method, *args) for shard in range(len(self.shards))),
            return_exceptions=True,
        )
        answers = {i: r for i, r in enumerate(results) if not isinstance(r, BaseException)}
        missing = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        return answers, missing

    async def _call_shard(self, shard: int, method: str, *args: Any) -> Any:
        """One shard call within serve.shard_timeout_s, timed; failures counted and re-raised."""
        started = time.perf_counter()
        call = getattr(self.shards[shard], method).remote(*args)
        try:
            result = await asyncio.wait_for(call, self.cfg.serve.shard_timeout_s)
        except Exception as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            tags = {"shard": str(shard), "method": method, "reason": reason}
            self.metrics.shard_failures.inc(tags=tags)
            log.warning("shard %d: %s %s: %r", shard, method, reason, exc)
            raise
        self.metrics.shard_latency.observe(
            time.perf_counter() - started, tags={"shard": str(shard), "method": method}
        )
        return result
