"""HTTP ingress (FastAPI on Serve): encode the query, fan out to every shard, merge top-k."""

import asyncio
import heapq
import time
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from conf.config import PinstreamConfig
from serve.api_models import MAX_K, PinResponse, SearchRequest, SearchResponse
from shards.routing import shard_of

# Serve pickles the ingress class when it is decorated: everything it uses must be
# defined above it.
api = FastAPI(title="pinstream", version="0.1.0", description="Similar pins, fresh.")
PinId = Path(min_length=1, max_length=64)


@serve.ingress(api)
class Ingress:
    """The public API; holds handles to the query encoder and the shard deployments."""

    def __init__(
        self, cfg: PinstreamConfig, encoder: DeploymentHandle, shards: list[DeploymentHandle]
    ) -> None:
        self.cfg = cfg
        self.encoder = encoder
        self.shards = shards
        self.generation = cfg.model.generation

    @api.get("/healthz")
    async def healthz(self) -> JSONResponse:
        """200 with per-shard stats when every shard answers, else 503."""
        answers, missing = await self._fan_out("stats")
        body = {
            "status": "ok" if not missing else "degraded",
            "generation": self.generation,
            "pins": sum(a["pins"] for a in answers.values()),
            "shards": [answers[s] for s in sorted(answers)],
            "missing_shards": missing,
        }
        return JSONResponse(body, status_code=200 if not missing else 503)

    @api.post("/v1/search", response_model=SearchResponse)
    async def search(self, request: SearchRequest) -> SearchResponse:
        """Similar pins for a text or a vector."""
        started = time.perf_counter()
        if request.vector is not None:
            vector = self._checked_vector(request.vector)
        else:
            vector = await self.encoder.encode.remote(request.text)
        return await self._search(vector, request.k, started)

    @api.get("/v1/pins/{pin_id}", response_model=PinResponse)
    async def pin(self, pin_id: str = PinId) -> PinResponse:
        """The indexed pin, or 404."""
        found = await self._get(pin_id)
        return PinResponse(
            pin_id=found["pin_id"],
            title=found["title"],
            board=found["board"],
            version=found["version"],
            generation=self.generation,
        )

    @api.get("/v1/pins/{pin_id}/related", response_model=SearchResponse)
    async def related(
        self, pin_id: str = PinId, k: int = Query(default=10, ge=1, le=MAX_K)
    ) -> SearchResponse:
        """Pins similar to an indexed pin (the pin itself excluded)."""
        started = time.perf_counter()
        found = await self._get(pin_id)
        response = await self._search(found["vector"], k + 1, started)
        response.results = [r for r in response.results if r.pin_id != pin_id][:k]
        return response

    # -- internals -----------------------------------------------------------------------------

    def _checked_vector(self, values: list[float]) -> np.ndarray:
        dim = self.cfg.shards.dim
        if len(values) != dim:
            raise HTTPException(422, f"vector has {len(values)} values; this index has dim {dim}")
        vector = np.asarray(values, dtype=np.float32)
        if not np.isfinite(vector).all():
            raise HTTPException(422, "vector values must be finite numbers")
        return vector

    async def _get(self, pin_id: str) -> dict[str, Any]:
        shard = self.shards[shard_of(pin_id, len(self.shards))]
        try:
            found = await asyncio.wait_for(shard.get.remote(pin_id), self.cfg.serve.shard_timeout_s)
        except TimeoutError as exc:
            raise HTTPException(503, f"the shard holding pin {pin_id!r} did not answer") from exc
        if found is None:
            raise HTTPException(404, f"pin {pin_id!r} is not indexed")
        return found

    async def _search(self, vector: np.ndarray, k: int, started: float) -> SearchResponse:
        answers, missing = await self._fan_out("search", vector, k)
        hits = [hit for per_shard in answers.values() for hit in per_shard[0]]
        if self.cfg.shards.metric == "ip":
            best = heapq.nlargest(k, hits, key=lambda h: h["score"])
        else:
            best = heapq.nsmallest(k, hits, key=lambda h: h["score"])
        return SearchResponse(
            results=best,
            generation=self.generation,
            partial=bool(missing),
            missing_shards=missing,
            took_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def _fan_out(self, method: str, *args: Any) -> tuple[dict[int, Any], list[int]]:
        """Call `method` on every shard with a per-shard timeout; return answers and the missing."""
        calls = [getattr(shard, method).remote(*args) for shard in self.shards]
        timeout = self.cfg.serve.shard_timeout_s
        results = await asyncio.gather(
            *(asyncio.wait_for(call, timeout) for call in calls), return_exceptions=True
        )
        answers = {i: r for i, r in enumerate(results) if not isinstance(r, BaseException)}
        missing = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        return answers, missing
