"""The traffic policy: its checks, its draws, and its store (atomic replace, history)."""

from pathlib import Path

import pytest

from conf.config import PinstreamConfig
from serve.traffic import TrafficPolicy, TrafficPolicyError, TrafficStore


def test_policy_checks_its_roles() -> None:
    with pytest.raises(TrafficPolicyError, match="canary needs a generation and a percent"):
        TrafficPolicy("a", canary="b")
    with pytest.raises(TrafficPolicyError, match=r"canary_percent must be in \[0, 100\]"):
        TrafficPolicy("a", canary="b", canary_percent=120)
    with pytest.raises(TrafficPolicyError, match="shadow generation must differ"):
        TrafficPolicy("a", shadow="a")
    with pytest.raises(TrafficPolicyError, match="not a traffic policy"):
        TrafficPolicy.from_dict({"primary": "a", "canry": "b"})


def test_canary_takes_its_share_of_draws() -> None:
    policy = TrafficPolicy("a", canary="b", canary_percent=10)
    picks = [policy.pick(draw / 1000) for draw in range(1000)]
    assert picks.count("b") == 100 and picks.count("a") == 900
    assert policy.generations == ["a", "b"]


def test_low_confidence_by_metric() -> None:
    policy = TrafficPolicy("a", fallback="f", fallback_below=0.4)
    bar = policy.fallback_below
    assert policy.low_confidence(0.3, "ip", bar) and not policy.low_confidence(0.5, "ip", bar)
    assert policy.low_confidence(0.5, "l2", bar) and not policy.low_confidence(0.3, "l2", bar)
    assert policy.low_confidence(None, "ip", bar), "no hit at all is low confidence"
    assert not TrafficPolicy("a").low_confidence(None, "ip", bar), "no fallback: never"


def test_a_fallback_share_is_a_fraction_and_needs_a_fallback() -> None:
    with pytest.raises(TrafficPolicyError, match=r"fallback_share must be in \[0, 1\)"):
        TrafficPolicy("a", fallback="f", fallback_share=1.0)
    with pytest.raises(TrafficPolicyError, match="a fallback share needs a fallback"):
        TrafficPolicy("a", fallback_share=0.1)


def test_store_defaults_sets_and_rolls_back(tmp_path: Path) -> None:
    cfg = PinstreamConfig().with_value("storage.root", str(tmp_path))
    store = TrafficStore(cfg)
    assert store.current() == TrafficPolicy(cfg.model.generation)
    with pytest.raises(TrafficPolicyError, match="no earlier traffic policy"):
        store.rollback()
    canary = store.set(TrafficPolicy(cfg.model.generation, canary="v2", canary_percent=10))
    promoted = store.set(TrafficPolicy("v2", fallback=cfg.model.generation, fallback_below=0.3))
    assert store.current() == promoted
    assert store.rollback() == canary and store.current() == canary
    assert store.rollback() == TrafficPolicy(cfg.model.generation)
    assert not list(tmp_path.glob("*.tmp-*")), "no temporary file is left behind"


def test_a_damaged_policy_file_is_an_error_not_a_default(tmp_path: Path) -> None:
    cfg = PinstreamConfig().with_value("storage.root", str(tmp_path))
    (tmp_path / "traffic.json").write_text('{"current": {"primary": ')
    with pytest.raises(TrafficPolicyError, match="cannot read"):
        TrafficStore(cfg).current()
