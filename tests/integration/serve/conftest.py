"""Helpers of the Serve tests: one query encoder per session, an app deployed per module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from ray import serve
from ray.serve import Application

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder


@pytest.fixture(scope="session")
def text_encoder() -> TextEncoder:
    """The reference encoder in the test process: the oracle for pin and query vectors."""
    return TextEncoder(PinstreamConfig().model)


@contextmanager
def deployed(cfg: PinstreamConfig, application: Application, serve_url: str) -> Iterator[str]:
    """Run `application` under the app name of `cfg`; yield its base URL; delete it after."""
    prefix = f"/{cfg.serve.app_name}"
    serve.run(application, name=cfg.serve.app_name, route_prefix=prefix, blocking=False)
    try:
        yield f"{serve_url}{prefix}"
    finally:
        serve.delete(cfg.serve.app_name)
