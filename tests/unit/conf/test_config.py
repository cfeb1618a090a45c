from pathlib import Path

import pytest

from conf import ConfigError, PinstreamConfig, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_local_yaml_loads_with_the_documented_defaults() -> None:
    cfg = load_config()
    assert cfg.broker.is_local
    assert cfg.shards.dim == 384
    assert cfg.topics.pins == "pins" and cfg.topics.dlq == "pins.dlq"
    assert cfg.topics.embeddings == "pin-embeddings"
    assert cfg == PinstreamConfig()  # the YAML spells out the dataclass defaults


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"serve\.prot: unknown key"):
        load_config(write(tmp_path, "serve:\n  prot: 8000\n"))


def test_wrong_type_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shards\.count: expected int, got str"):
        load_config(write(tmp_path, "shards:\n  count: two\n"))


def test_bool_is_not_an_int(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.batch_size"):
        load_config(write(tmp_path, "model:\n  batch_size: true\n"))


def test_cross_field_check_names_the_section(tmp_path: Path) -> None:
    text = "ingest:\n  embedders_min: 3\n  embedders_max: 1\n"
    with pytest.raises(ConfigError, match=r"<root>|ingest: embedders_max \(1\) must be >="):
        load_config(write(tmp_path, text))


def test_literal_values_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shards\.metric: must be one of \['ip', 'l2'\]"):
        load_config(write(tmp_path, "shards:\n  metric: cosine\n"))


def test_bad_bootstrap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bootstrap"):
        load_config(write(tmp_path, "broker:\n  bootstrap: not a host\n"))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "serve: [unclosed\n"))


def test_with_value_checks_the_new_value() -> None:
    cfg = PinstreamConfig().with_value("serve.port", 9001)
    assert cfg.serve.port == 9001
    with pytest.raises(ConfigError, match=r"serve\.port"):
        cfg.with_value("serve.port", "x")
    with pytest.raises(ConfigError, match="unknown key"):
        cfg.with_value("serve.nope", 1)


def test_save_config_round_trips(tmp_path: Path) -> None:
    from conf.config import save_config

    cfg = PinstreamConfig().with_value("shards.count", 3).with_value("broker.bootstrap", "h:9092")
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


def test_shard_index_settings_are_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shards.*sealed_index 'IVF,Nope' is not a valid"):
        load_config(write(tmp_path, "shards:\n  sealed_index: IVF,Nope\n"))
    cfg = load_config(write(tmp_path, "shards:\n  sealed_index: IVF64,PQ48\n  growing_limit: 7\n"))
    index = cfg.shards
    assert (index.dim, index.metric, index.sealed_index, index.growing_limit) == (
        384,
        "ip",
        "IVF64,PQ48",
        7,
    )


def test_snapshot_roots_are_keyed_by_the_log_they_fold() -> None:
    cfg = PinstreamConfig().with_value("storage.root", "s3://bucket/pinstream/")
    assert cfg.snapshot_root(3) == "s3://bucket/pinstream/snapshots/pin-embeddings/shard-3"
    assert cfg.namespaced("t1").snapshot_root(3).endswith("/pin-embeddings-t1/shard-3")


def test_search_settings_of_the_shards_are_reachable_from_yaml(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "shards:\n  nprobe: 8\n  rerank_factor: 0\n"))
    assert (cfg.shards.nprobe, cfg.shards.rerank_factor, cfg.shards.ef_search) == (8, 0, 64)
    with pytest.raises(ConfigError, match=r"shards.*nprobe must be an int >= 1"):
        load_config(write(tmp_path, "shards:\n  nprobe: 0\n"))


def test_search_device_is_checked_at_load(tmp_path: Path) -> None:
    assert PinstreamConfig().shards.search_device == "auto"
    cfg = load_config(write(tmp_path, "shards:\n  search_device: cpu\n"))
    assert cfg.shards.search_device == "cpu"
    with pytest.raises(ConfigError, match=r"shards\.search_device: must be one of"):
        load_config(write(tmp_path, "shards:\n  search_device: gpu\n"))


def test_routing_defaults_to_hash_and_its_keys_are_checked_at_load(tmp_path: Path) -> None:
    assert load_config().shards.routing == "hash"
    text = "shards:\n  count: 4\n  routing: centroid\n  route_groups: 64\n  route_nprobe: 4\n"
    shards = load_config(write(tmp_path, text)).shards
    assert (shards.routing, shards.route_groups, shards.route_nprobe) == ("centroid", 64, 4)
    refused = {
        "routing: ivf\n": r"shards\.routing: must be one of \['hash', 'centroid'\]",
        "route_groups: 0\n": r"shards: route_groups must be an int >= 1",
        "route_nprobe: 0\n": r"shards: route_nprobe must be an int >= 1",
        "route_groups: 8\n  route_nprobe: 9\n": r"shards: route_nprobe \(9\) must be <= route_",
        "count: 8\n  routing: centroid\n  route_groups: 4\n  route_nprobe: 2\n": (
            r"shards: route_groups \(4\) must be >= count \(8\)"
        ),
    }
    for body, message in refused.items():
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, "shards:\n  " + body))
    # Fewer groups than shards is harmless while the groups are not used.
    text = "shards:\n  count: 8\n  route_groups: 4\n  route_nprobe: 2\n"
    assert load_config(write(tmp_path, text)).shards.route_groups == 4


def test_router_roots_are_keyed_by_the_log_they_route() -> None:
    cfg = PinstreamConfig().with_value("storage.root", "s3://bucket/pinstream/")
    assert cfg.router_root() == "s3://bucket/pinstream/routers/pin-embeddings"
    generation = cfg.for_generation("g2", "base")
    assert generation.router_root() == "s3://bucket/pinstream/routers/pin-embeddings.g2"


def test_the_batch_latency_budget_and_fetch_wait_are_checked_at_load(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "ingest:\n  batch_latency_budget_ms: 0\n"))
    assert cfg.ingest.batch_latency_budget_ms == 0  # no wait: each poll is a batch
    with pytest.raises(ConfigError, match=r"ingest: batch_latency_budget_ms .* must be >= 0"):
        load_config(write(tmp_path, "ingest:\n  batch_latency_budget_ms: -1\n"))
    with pytest.raises(ConfigError, match=r"ingest\.linger_ms: unknown key"):
        load_config(write(tmp_path, "ingest:\n  linger_ms: 250\n"))  # replaced by the budget
    with pytest.raises(ConfigError, match=r"broker: fetch_max_wait_ms must be > 0"):
        load_config(write(tmp_path, "broker:\n  fetch_max_wait_ms: 0\n"))
    text = "broker:\n  fetch_max_wait_ms: 40000\n"
    with pytest.raises(ConfigError, match=r"broker: request_timeout_ms must be > max"):
        load_config(write(tmp_path, text))


def test_the_freshness_rule_of_the_embedder_pool_is_checked_at_load(tmp_path: Path) -> None:
    ingest = load_config().ingest
    assert ingest.freshness_slo_p99_s == 3.0 and ingest.freshness_window_s == 30.0
    off = load_config(write(tmp_path, "ingest:\n  freshness_slo_p99_s: 0\n"))
    assert off.ingest.freshness_slo_p99_s == 0  # 0 = no SLO: Ray Data's own rule alone
    for text, message in (
        ("freshness_slo_p99_s: -1", r"ingest: freshness_slo_p99_s must be >= 0"),
        ("freshness_window_s: 0", r"ingest: freshness_window_s must be > 0"),
        ("pool_upscale_delay_s: -1", r"ingest: pool_upscale_delay_s must be >= 0"),
        ("pool_downscale_delay_s: -5", r"ingest: pool_downscale_delay_s must be >= 0"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, f"ingest:\n  {text}\n"))
