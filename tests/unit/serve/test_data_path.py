"""The environment each throughput mode puts in front of Ray, and the handles that follow."""

from __future__ import annotations

import os

import pytest

from conf.config import PinstreamConfig, ServeConfig
from serve.data_path import DRAIN_VARIABLE, handle_options, serve_environment, use_serve_environment


def settings(mode: str, drain_s: float = 1.0) -> ServeConfig:
    return (
        PinstreamConfig()
        .with_value("serve.throughput_mode", mode)
        .with_value("serve.ingress_drain_s", drain_s)
        .serve
    )


def test_plain_mode_changes_nothing_in_ray() -> None:
    assert serve_environment(settings("plain")) == {}
    assert handle_options("plain") == {}


@pytest.mark.parametrize("mode", ["optimized", "haproxy"])
def test_fast_modes_set_their_switches_and_the_ingress_drain(mode: str) -> None:
    environment = serve_environment(settings(mode, drain_s=30.0))
    assert environment["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert ("RAY_SERVE_ENABLE_HA_PROXY" in environment) == (mode == "haproxy")
    assert environment[DRAIN_VARIABLE] == "30"
    assert handle_options(mode) == {"_by_reference": False}


def test_a_variable_the_user_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DRAIN_VARIABLE, "7")
    monkeypatch.delenv("RAY_SERVE_THROUGHPUT_OPTIMIZED", raising=False)
    use_serve_environment(settings("optimized", drain_s=0.5))
    assert os.environ[DRAIN_VARIABLE] == "7"
    assert os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
