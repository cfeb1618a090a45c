"""Helpers of the Serve tests: an app deployed per module, pins written to its log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from ray import serve
from ray.serve import Application

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder
from streams.embeddings_log import EmbeddingsLogWriter, upsert_rows
from streams.pin_text import pin_text
from streams.synthetic import SyntheticPin


@contextmanager
def deployed(cfg: PinstreamConfig, application: Application, serve_url: str) -> Iterator[str]:
    """Run `application` under the app name of `cfg`; yield its base URL; delete it after."""
    prefix = f"/{cfg.serve.app_name}"
    serve.run(application, name=cfg.serve.app_name, route_prefix=prefix, blocking=False)
    try:
        yield f"{serve_url}{prefix}"
    finally:
        serve.delete(cfg.serve.app_name)


def logged_pins(cfg: PinstreamConfig, pins: list[SyntheticPin], encoder: TextEncoder) -> np.ndarray:
    """Write `pins` (version 1, embedded by `encoder`) to cfg's embeddings log; their vectors.

    Written before the app starts: a replica takes traffic only once it has caught up, so the
    first answer already sees every pin."""
    events = [p.event for p in pins]
    vectors = encoder.encode([pin_text(e.title, e.description, e.board, e.tags) for e in events])
    with EmbeddingsLogWriter(cfg.broker.bootstrap, cfg.topics.embeddings, cfg.shards.count) as w:
        w.write(upsert_rows(events, vectors, 1, cfg.model.generation))
        w.flush()
    return vectors
