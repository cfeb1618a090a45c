"""Backfill: build a new index generation from the whole `pins` topic while the current one
keeps serving.

A generation is one model version with its own embeddings log, consumer group, dead-letter
topic and snapshots (`PinstreamConfig.for_generation`). The backfill deploys the generation's
shards and query encoder as a Serve application of their own (serve/app.py) and meanwhile
runs the ingest job for it: its consumer group has no committed offsets, so Ray Data reads
`pins` from the earliest offset, embeds with the new model in the actor pool, and, once caught
up, keeps following the live stream. Traffic moves to it only when the traffic policy says so
(`pinstream traffic`), and moves back in one policy switch, since the old generation stays warm.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ray import serve

from conf.config import PinstreamConfig
from encoder.model_folder import model_kind
from encoder.text_encoder import model_path
from jobs.ingest import IngestJob, IngestStats
from jobs.stack import create_topics
from serve.app import build_generation_app
from serve.generation import generation_app_name

log = logging.getLogger(__name__)


def generation_config(cfg: PinstreamConfig, model: str, generation: str | None) -> PinstreamConfig:
    """The config of the generation that `model` builds (named after the model by default)."""
    name = generation or model
    if name == cfg.model.generation:
        raise ValueError(f"generation {name!r} is the one this config serves already")
    generation_cfg = cfg.for_generation(name, model)
    folder = model_path(generation_cfg.model)
    kind = "text" if folder is None else model_kind(Path(folder))
    if kind != cfg.model.kind:  # one space per index: the ingress and shards share one dim
        raise ValueError(
            f"model {model!r} is a {kind} model and this config serves model.kind "
            f"{cfg.model.kind}: the generations of one deployment share a kind and shards.dim"
        )
    return generation_cfg


def deploy_generation(cfg: PinstreamConfig, generation_cfg: PinstreamConfig) -> str:
    """Run the generation's shards and query encoder on Serve; return the application name."""
    app_name = generation_app_name(cfg.serve.app_name, generation_cfg.model.generation)
    serve.run(
        build_generation_app(generation_cfg), name=app_name, route_prefix=None, blocking=False
    )
    return app_name


class Backfill:
    """Deploys a generation and ingests every pin into it; stop it with `stop()`."""

    def __init__(
        self,
        cfg: PinstreamConfig,
        model: str,
        generation: str | None = None,
        idle_stop_s: float | None = None,
    ) -> None:
        self.cfg = cfg
        self.generation_cfg = generation_config(cfg, model, generation)
        self.ingest = IngestJob(self.generation_cfg, idle_stop_s=idle_stop_s)

    @property
    def generation(self) -> str:
        return self.generation_cfg.model.generation

    def run(
        self, progress: Callable[[IngestStats], None] | None = None, every_s: float = 5.0
    ) -> IngestStats:
        """Deploy and ingest until stopped (or idle); report progress every `every_s`.

        The deploy runs beside the ingest (the shards tail the log as it grows), so the
        embedder actors and the generation's replicas load their models at the same time;
        it returns once both are done, and a failed deploy stops the ingest and is raised."""
        create_topics(self.generation_cfg)
        deploy_error: list[BaseException] = []

        def deploy() -> None:
            try:
                app_name = deploy_generation(self.cfg, self.generation_cfg)
            except BaseException as exc:  # raised by run() once the ingest has stopped
                deploy_error.append(exc)
                self.ingest.stop()
                return
            log.info("generation %s deployed as Serve application %s", self.generation, app_name)

        deploying = threading.Thread(target=deploy, name="backfill-deploy", daemon=True)
        deploying.start()
        done = threading.Event()
        if progress is not None:

            def report() -> None:
                while not done.wait(every_s):
                    progress(self.ingest.stats)

            threading.Thread(target=report, name="backfill-progress", daemon=True).start()
        try:
            stats = self.ingest.run()
        finally:
            done.set()
        deploying.join()
        if deploy_error:
            raise deploy_error[0]
        return stats

    def stop(self) -> None:
        self.ingest.stop()
