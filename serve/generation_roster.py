"""The generations an ingress replica answers from, and the traffic policy over them.

The ingress's own generation is bound into its application; every other generation the
policy names runs as an application of its own and is reached by name (serve/generation.py).
A watcher thread re-reads the policy every `serve.traffic_poll_s` and adopts a new one only
once every generation it names is reachable; it also follows which shards run 2 or more
replicas (only their searches are hedged) and exports the fallback's gauges. Each query reads
the policy and the clients once (`route`), so a switch never splits a query.
"""

from __future__ import annotations

import logging
import threading
import time

from ray import serve
from ray.serve.handle import DeploymentHandle

from conf.config import PinstreamConfig
from serve.data_path import handle_options
from serve.exceptions import GenerationNotServed
from serve.fallback_bar import FallbackBar
from serve.generation import (
    ENCODER_DEPLOYMENT,
    GenerationClient,
    generation_app_name,
    shard_deployment_name,
)
from serve.metrics import IngressMetrics
from serve.query_plan import Route
from serve.replica_counts import multi_replica_shards
from serve.traffic import TrafficPolicyError, TrafficStore
from shards.router_store import load_router

log = logging.getLogger(__name__)


class GenerationRoster:
    """A client per warm generation, the traffic policy, and the fallback's bar under it."""

    def __init__(
        self,
        cfg: PinstreamConfig,
        encoder: DeploymentHandle,
        shards: list[DeploymentHandle],
        metrics: IngressMetrics,
    ) -> None:
        self.cfg = cfg
        self.generation = cfg.model.generation  # the generation bound into this application
        self.metrics = metrics
        # The handles bound into the app were made by its deployer, with the deployer's
        # transport; handles this replica makes itself (other generations) take its own.
        options = handle_options(cfg.serve.throughput_mode)
        encoder, shards = encoder.options(**options), [s.options(**options) for s in shards]
        own = self._client(self.generation, encoder, shards)
        self.clients: dict[str, GenerationClient] = {self.generation: own}
        # Hedging needs a shard deployment that may run 2 or more replicas (read here, once:
        # Ray's AutoscalingConfig is built in this thread, not in the policy watcher's).
        settings = cfg.serve
        self._may_hedge = settings.hedge_quantile > 0 and settings.shard_scaling.max_replicas >= 2
        self._store = TrafficStore(cfg)
        self.policy = self._store.default
        self.fallback_bar = FallbackBar(
            cfg.shards.metric, settings.fallback_window, settings.fallback_min_samples, self.policy
        )
        self.refresh_policy()

    def start_watching(self) -> None:
        """Follow the stored policy and the shards' replica counts in a daemon thread."""
        threading.Thread(target=self._watch, name="traffic-policy", daemon=True).start()

    def route(self, requested: str | None, pinned: bool = False) -> Route:
        """The route of one query: a named generation alone, or the policy's draw."""
        policy, clients = self.policy, self.clients  # read once: a switch never splits a query
        if requested is not None or pinned:
            if requested not in clients:
                raise GenerationNotServed(requested, sorted(clients))
            return Route(clients[requested], "pinned")
        answer = policy.pick()
        return Route(
            clients[answer],
            "primary" if answer == policy.primary else "canary",
            fallback=clients[policy.fallback] if policy.fallback else None,
            shadow=clients[policy.shadow] if policy.shadow else None,
            policy=policy,
            fallback_bar=self.fallback_bar.bar() if policy.fallback else 0.0,
        )

    def refresh_policy(self) -> None:
        """Adopt the stored policy once every generation it names is reachable."""
        try:
            policy = self._store.current()
        except TrafficPolicyError as exc:
            log.error("traffic policy unreadable, keeping the current one: %s", exc)
            return
        if policy == self.policy:
            return
        clients = dict(self.clients)
        try:
            for generation in policy.generations:
                if generation not in clients:
                    clients[generation] = self._remote_client(generation)
        except Exception as exc:  # the generation's application is not running (yet)
            log.error("traffic policy %s not adopted: %r", policy, exc)
            return
        self.fallback_bar.adopt(policy)
        self.clients, self.policy = clients, policy  # clients first: routes read both
        log.info("traffic policy now %s", policy)

    def _watch(self) -> None:
        while True:  # a daemon thread: it ends with the replica
            time.sleep(self.cfg.serve.traffic_poll_s)
            self.refresh_policy()
            self._refresh_hedging()
            self._export_fallback()

    def _export_fallback(self) -> None:
        """The fallback's bar and the share it took, as gauges (each poll, not each query)."""
        policy = self.policy
        if policy.fallback is None:
            return
        tags = {"primary": policy.primary, "fallback": policy.fallback}
        summary = self.fallback_bar.summary()
        self.metrics.fallback_bar.set(summary["bar"], tags=tags)
        if summary["share_taken"] is not None:
            self.metrics.fallback_share.set(summary["share_taken"], tags=tags)

    def _refresh_hedging(self) -> None:
        """Hedge the searches of the shards that run 2 or more replicas now."""
        if not self._may_hedge:
            return
        for generation, client in self.clients.items():
            app_name = self.cfg.serve.app_name
            if generation != self.generation:
                app_name = generation_app_name(app_name, generation)
            client.hedge_shards = multi_replica_shards(app_name, len(client.shards))

    def _remote_client(self, generation: str) -> GenerationClient:
        app_name = generation_app_name(self.cfg.serve.app_name, generation)
        encoder = serve.get_deployment_handle(ENCODER_DEPLOYMENT, app_name=app_name)
        shards = [
            serve.get_deployment_handle(shard_deployment_name(shard), app_name=app_name)
            for shard in range(self.cfg.shards.count)
        ]
        return self._client(generation, encoder, shards)

    def _client(
        self, generation: str, encoder: DeploymentHandle, shards: list[DeploymentHandle]
    ) -> GenerationClient:
        settings, metric = self.cfg.serve, self.cfg.shards.metric
        cfg = self.cfg  # the base config: every other generation's is derived from it
        if generation != self.generation:
            cfg = cfg.for_generation(generation, cfg.model.name)
        router = load_router(cfg)  # None with hash sharding
        return GenerationClient(generation, encoder, shards, settings, metric, self.metrics, router)
