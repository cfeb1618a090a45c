"""The serve section: replica bounds, readiness, limits and API keys are checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from conf import ConfigError, PinstreamConfig, load_config
from conf.config import save_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_need_no_key_run_one_replica_per_shard_and_scale_the_front() -> None:
    serve = load_config().serve
    assert serve.api_keys == ()
    assert serve.max_body_bytes == 1024 * 1024
    scaling = serve.shard_scaling
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 1)
    assert scaling.target_ongoing_requests == 2
    # the ingress and the query encoder scale out to a second replica under load
    assert (serve.ingress_scaling.max_replicas, serve.encoder_scaling.max_replicas) == (2, 2)
    assert serve.encoder_scaling.target_ongoing_requests == serve.encoder_max_batch_size


def test_api_keys_load_as_a_tuple_and_never_show_in_repr(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "serve:\n  api_keys: [alpha-1, beta-2]\n"))
    assert cfg.serve.api_keys == ("alpha-1", "beta-2")
    assert "alpha-1" not in repr(cfg)
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("serve:\n  api_keys: key\n", r"serve\.api_keys: expected a list"),
        ("serve:\n  api_keys: ['has space']\n", r"api_keys\[0\] must be non-empty"),
        ("serve:\n  api_keys: ['a,b']\n", r"without spaces or commas"),
        ("serve:\n  api_keys: ['']\n", r"api_keys\[0\]"),
        ("serve:\n  max_body_bytes: 0\n", r"max_body_bytes must be > 0"),
        (
            "serve:\n  shard_autoscaling: {min_replicas: 2, max_replicas: 1}\n",
            r"shard_autoscaling: .*max_replicas \(1\) must be greater than or equal to "
            r"min_replicas \(2\)",
        ),
        (
            "serve:\n  shard_autoscaling: {max_replicas: 0}\n",
            r"shard_autoscaling\.max_replicas: Input should be greater than 0",
        ),
        (
            "serve:\n  shard_autoscaling: {max_replica: 3}\n",
            r"shard_autoscaling\.max_replica: not a Ray Serve autoscaling key",
        ),
        ("serve:\n  shard_autoscaling: 3\n", r"serve\.shard_autoscaling: expected a mapping"),
        (
            "serve:\n  shard_autoscaling: {target_ongoing_requests: 64}\n",
            r"shard_autoscaling.target_ongoing_requests \(64.0\) must be "
            r"<= shard_max_ongoing_requests",
        ),
        (
            "serve:\n  ingress_autoscaling: {target_ongoing_requests: 300}\n",
            r"ingress_autoscaling.target_ongoing_requests \(300.0\) must be "
            r"<= ingress_max_ongoing_requests \(256\)",
        ),
        (
            "serve:\n  encoder_max_batch_size: 8\n",  # the default target is a 32-text batch
            r"encoder_autoscaling.target_ongoing_requests \(32.0\) must be "
            r"<= encoder_max_ongoing_requests \(16\)",
        ),
        (
            "serve:\n  encoder_autoscaling: {min_replicas: 3, max_replicas: 2}\n",
            r"encoder_autoscaling: .*max_replicas \(2\) must be greater than or equal to",
        ),
        ("serve:\n  shard_max_batch_size: 0\n", r"shard_max_batch_size must be > 0"),
        ("serve:\n  shard_batch_wait_s: -0.1\n", r"shard_batch_wait_s must be >= 0"),
        ("serve:\n  fan_out_max_batch_size: 0\n", r"fan_out_max_batch_size must be > 0"),
        ("serve:\n  fan_out_max_wait_s: -0.1\n", r"fan_out_max_wait_s must be >= 0"),
        ("serve:\n  hedge_quantile: 1.0\n", r"hedge_quantile must be in \[0, 1\)"),
        ("serve:\n  max_batch_queries: 1001\n", r"max_batch_queries must be <= 1000"),
        ("serve:\n  shard_ready_max_lag: -1\n", r"shard_ready_max_lag must be >= 0"),
        ("serve:\n  shard_ready_timeout_s: 0\n", r"shard_ready_timeout_s must be > 0"),
        ("serve:\n  encoder_num_gpus: -1\n", r"encoder_num_gpus must be >= 0"),
        ("serve:\n  encoder_threads: -1\n", r"encoder_threads must be >= 0"),
    ],
)
def test_bad_serve_values_are_refused_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_with_value_sets_replica_bounds() -> None:
    cfg = PinstreamConfig().with_value("serve.shard_autoscaling.max_replicas", 2)
    assert cfg.serve.shard_scaling.max_replicas == 2
    assert cfg.serve.shard_scaling.min_replicas == 1


def test_grpc_is_off_by_default_and_its_port_is_checked(tmp_path: Path) -> None:
    assert load_config().serve.grpc_port == 0
    assert load_config(write(tmp_path, "serve:\n  grpc_port: 9000\n")).serve.grpc_port == 9000
    with pytest.raises(ConfigError, match=r"serve: grpc_port must be 0\.\.65535, got 70000"):
        load_config(write(tmp_path, "serve:\n  grpc_port: 70000\n"))
