"""Typed pinstream configuration; every value is checked once, when the file is loaded."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import yaml

from conf.loader import build, load_yaml, replace_path

if TYPE_CHECKING:
    from ray.serve.config import AutoscalingConfig

LOCAL_CONFIG = Path(__file__).with_name("local.yaml")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
MAX_POSITIONS = 512  # BERT-family position embeddings: longer inputs cannot be encoded
Metric = Literal["ip", "l2"]  # inner product (cosine on unit vectors) or squared L2
Routing = Literal["hash", "centroid"]  # how pins are assigned to shards (ShardsConfig.routing)
# Ray Serve's own data path (ServeConfig.throughput_mode): as Ray ships it, its throughput-
# optimised mode (gRPC between replicas), or that and its HAProxy ingress.
ThroughputMode = Literal["plain", "optimized", "haproxy"]


def higher_is_better(metric: str) -> bool:
    """Whether a larger score is a closer vector: inner product yes, (squared) L2 no."""
    return metric == "ip"


_HOST_PORT = re.compile(r"^[\w.\-\[\]:]+:\d{1,5}$")


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


@dataclass(frozen=True)
class BrokerConfig:
    """Where Kafka is: `local` starts the embedded broker on a free loopback port."""

    bootstrap: str = "local"
    client_id: str = "pinstream"  # names every Kafka client in the broker's logs and quotas
    # Deadlines of every Kafka call (see streams/kafka_io.py KafkaClientSettings): a broker that
    # is away makes a call fail after these, and the ingest job retries from its last commit.
    request_timeout_ms: int = 30_000
    delivery_timeout_ms: int = 120_000
    close_timeout_s: float = 5.0
    # The longest the broker holds a consumer's fetch that found no record (streams/kafka_io.py
    # says why it is short): the local broker answers a fetch late even when records arrive.
    fetch_max_wait_ms: int = 100

    @property
    def is_local(self) -> bool:
        return self.bootstrap == "local"

    def __post_init__(self) -> None:
        _positive("fetch_max_wait_ms", self.fetch_max_wait_ms)
        # kafka-python's consumer needs request_timeout_ms > fetch_max_wait_ms, and this
        # check kept room for its default of 500 ms.
        if self.request_timeout_ms <= max(500, self.fetch_max_wait_ms):
            raise ValueError(
                f"request_timeout_ms must be > max(500, fetch_max_wait_ms), "
                f"got {self.request_timeout_ms}"
            )
        if self.delivery_timeout_ms < self.request_timeout_ms:
            raise ValueError(
                f"delivery_timeout_ms ({self.delivery_timeout_ms}) must be >= "
                f"request_timeout_ms ({self.request_timeout_ms})"
            )
        _positive("close_timeout_s", self.close_timeout_s)
        if not self.is_local:
            for server in self.bootstrap.split(","):
                if not _HOST_PORT.match(server.strip()):
                    raise ValueError(
                        f"bootstrap: expected 'local' or host:port[,...], got {server!r}"
                    )


@dataclass(frozen=True)
class TopicsConfig:
    """Topic names and partitioning; the embeddings log has one partition per shard."""

    pins: str = "pins"
    pins_partitions: int = 2
    dlq: str = "pins.dlq"
    embeddings: str = "pin-embeddings"
    replication_factor: int = 1

    def __post_init__(self) -> None:
        _positive("pins_partitions", self.pins_partitions)
        _positive("replication_factor", self.replication_factor)
        if len({self.pins, self.dlq, self.embeddings}) != 3:
            raise ValueError("pins, dlq and embeddings must be three different topics")


@dataclass(frozen=True)
class ShardsConfig:
    """How the index is split into shards, and how each shard indexes, seals, searches and
    compacts its vectors (the ShardIndex of every shard takes this config as it is).

    count: shards (= partitions of the embeddings log). dim, metric: vector dimension and
        "ip" (inner product) or "l2" (squared L2).
    sealed_index: faiss index_factory string for sealed segments, trained on each segment's
        own vectors; lowered for small segments (see shards.sealing.plan_factory).
    growing_limit: vectors in the exact growing segment before it is sealed in the background.
    nprobe, ef_search: search-time parameters of IVF and HNSW sealed indexes.
    rerank_factor: lossy sealed segments (PQ, SQ) fetch k * rerank_factor candidates and
        rescore them exactly from the raw vectors they keep on local disk; 0 turns it off.
    compact_dead_fraction: compaction starts in the background once this fraction of the
        vectors in sealed segments is dead (deleted or replaced); 1.0 waits until all are.
    snapshot_interval_s, snapshots_keep: the stack's sealer (0 = off) and snapshots kept.
    key_bits: bits of a pin's hashed key (63). Two pins whose keys collide still get
        separate entries (shards/shard_state.py); lower it only to test that.
    search_device: where sealed segments are searched: "cpu", "cuda" (faiss-gpu; a shard
        refuses to start without a GPU) or "auto" (cuda when faiss sees a GPU, else cpu).
    routing: "hash" (a pin's shard is a hash of its id; every query asks every shard) or
        "centroid" (a pin's shard owns the nearest of `route_groups` coarse centroids,
        trained by `pinstream router train`; a query asks only the shards owning its
        `route_nprobe` nearest groups; shards/router.py).
    """

    count: int = 2
    dim: int = 384
    metric: Metric = "ip"
    sealed_index: str = "IVF256,Flat"
    growing_limit: int = 50_000
    nprobe: int = 32
    ef_search: int = 64
    rerank_factor: int = 4
    compact_dead_fraction: float = 0.2
    snapshot_interval_s: float = 30.0
    snapshots_keep: int = 3
    key_bits: int = 63
    search_device: Literal["auto", "cpu", "cuda"] = "auto"
    routing: Routing = "hash"
    route_groups: int = 256
    route_nprobe: int = 8

    def __post_init__(self) -> None:
        for name in ("count", "dim", "growing_limit", "nprobe", "ef_search", "snapshots_keep"):
            _positive_int(name, getattr(self, name))
        self._check_routing()
        if self.metric not in _METRICS:
            raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {self.metric!r}")
        if isinstance(self.rerank_factor, bool) or not isinstance(self.rerank_factor, int):
            raise ValueError(f"rerank_factor must be an int >= 0, got {self.rerank_factor!r}")
        if self.rerank_factor < 0:
            raise ValueError(f"rerank_factor must be an int >= 0, got {self.rerank_factor!r}")
        fraction = self.compact_dead_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise ValueError(f"compact_dead_fraction must be a number, got {fraction!r}")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"compact_dead_fraction must be in (0, 1], got {fraction!r}")
        if self.snapshot_interval_s < 0:
            raise ValueError(f"snapshot_interval_s must be >= 0, got {self.snapshot_interval_s}")
        _positive_int("key_bits", self.key_bits)
        if self.key_bits > MAX_KEY_BITS:
            raise ValueError(f"key_bits must be <= {MAX_KEY_BITS}, got {self.key_bits}")
        if self.search_device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"search_device must be auto|cpu|cuda, got {self.search_device!r}")
        _check_factory(self.sealed_index, self.dim, self.metric)

    @property
    def metric_type(self) -> int:
        """The FAISS metric constant of `metric`."""
        return _METRICS[self.metric]

    def _check_routing(self) -> None:
        if self.routing not in ("hash", "centroid"):
            raise ValueError(f"routing must be hash or centroid, got {self.routing!r}")
        _positive_int("route_groups", self.route_groups)
        _positive_int("route_nprobe", self.route_nprobe)
        if self.route_nprobe > self.route_groups:
            raise ValueError(
                f"route_nprobe ({self.route_nprobe}) must be <= route_groups ({self.route_groups})"
            )
        if self.routing == "centroid" and self.route_groups < self.count:
            # A shard that owns no group would never receive a pin.
            raise ValueError(
                f"route_groups ({self.route_groups}) must be >= count ({self.count}) "
                "with centroid routing"
            )


# faiss's METRIC_INNER_PRODUCT and METRIC_L2 (faiss/MetricType.h); faiss itself is imported
# only by _check_factory, when a config is built.
_METRICS = {"ip": 0, "l2": 1}
MAX_KEY_BITS = 63  # FAISS ids are int64 >= 0


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


FAISS_MISSING = (
    "FAISS is not installed: install pinstream with the FAISS of the machine, "
    "pip install 'pinstream[cpu]' (faiss-cpu) or 'pinstream[gpu]' (faiss-gpu, CUDA 12), "
    "never both (both provide the module faiss)"
)


def import_faiss() -> ModuleType:
    """The faiss module, or an ImportError that says which pinstream extra provides it."""
    try:
        import faiss
    except ModuleNotFoundError as exc:
        if exc.name != "faiss":
            raise
        raise ImportError(FAISS_MISSING) from exc
    return faiss


def _check_factory(factory: Any, dim: int, metric: str) -> None:
    """Refuse a sealed_index string that FAISS cannot build for this dim and metric."""
    if not isinstance(factory, str) or not factory.strip():
        raise ValueError(f"sealed_index must be a faiss index_factory string, got {factory!r}")
    if "IDMap" in factory:
        # Sealed segments label vectors by position and map positions to ids themselves.
        raise ValueError(f"sealed_index must not contain IDMap, got {factory!r}")
    faiss = import_faiss()  # here, not at the top: a config is also read where faiss is not needed
    try:
        faiss.index_factory(dim, factory, _METRICS[metric])
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        raise ValueError(
            f"sealed_index {factory!r} is not a valid faiss index_factory string for dim {dim}: "
            f"{first_line}"
        ) from exc


@dataclass(frozen=True)
class ModelConfig:
    """Which encoder embeds pins and queries, and how.

    `kind`: text (a sentence encoder) or clip (a CLIP-format dual encoder,
    encoder/clip_encoder.py). `name`: "base" (the packaged weights), a model registry version
    id (looked up under `registry`), or a local model folder (a path with a "/").
    `registry` is the registry's root (a path, s3://, gs://); it travels with this config
    into Ray workers, so it is spelt out rather than derived from storage.root.
    """

    kind: Literal["text", "clip"] = "text"
    name: str = "base"
    # clip: a pin's vector is the unit mean of its image's (this weight) and its text's.
    image_weight: float = 1.0
    registry: str = "var/pinstream/models"
    generation: str = "minilm-l6-v2-base"
    device: str = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    batch_size: int = 64
    max_seq_length: int = 256
    threads: int = 0

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = every core), got {self.threads}")
        if self.kind not in ("text", "clip"):
            raise ValueError(f"kind must be text|clip, got {self.kind!r}")
        if self.kind == "clip" and self.name == "base":
            raise ValueError("kind clip needs a CLIP model folder or registry version as name")
        if not 0.0 <= self.image_weight <= 1.0:
            raise ValueError(f"image_weight must be in [0, 1], got {self.image_weight}")
        if not isinstance(self.device, str) or _DEVICE.fullmatch(self.device) is None:
            raise ValueError(f"device must be auto|cpu|cuda|cuda:N, got {self.device!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32|bfloat16|float16, got {self.dtype!r}")
        _positive_int("batch_size", self.batch_size)
        _positive_int("max_seq_length", self.max_seq_length)
        if self.max_seq_length > MAX_POSITIONS:
            raise ValueError(
                f"max_seq_length must be <= {MAX_POSITIONS} (the model's positions), "
                f"got {self.max_seq_length}"
            )
        if not self.name or not self.registry:
            raise ValueError("name and registry must not be empty")
        if not re.fullmatch(r"[A-Za-z0-9][\w.\-]{0,63}", self.generation):
            raise ValueError(
                f"generation must be a short name ([A-Za-z0-9_.-]), got {self.generation!r}"
            )


@dataclass(frozen=True)
class IngestConfig:
    """The Kafka -> Ray Data -> embedder -> embeddings log job."""

    consumer_group: str = "pinstream-ingest"
    max_poll_records: int = 64
    poll_timeout_ms: int = 100
    # A poll batch closes when it holds max_poll_records or when its oldest record is this
    # old, counted from its Kafka timestamp (streams/batch_budget.py): the share of the
    # freshness budget a record may spend waiting for its batch to fill.
    # 800 ms measured best at half the sustainable rate on 2 cores (bench/results/ingest.json,
    # docs/scaling.md): at 250 and 500 the batches (6, 9) were too small for the encoder to
    # keep up, and the queue in front of it cost far more than the wait.
    batch_latency_budget_ms: int = 800
    commit_interval_ms: int = 200
    embedders_min: int = 1
    embedders_max: int = 1
    embedder_num_cpus: float = 0.5
    embedder_num_gpus: float = 0.0
    reader_num_cpus: float = 0.05
    max_inflight_mib: int = 256
    max_batches_per_actor: int = 2
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 30.0
    # The embedder pool's freshness rule (jobs/pool_scaling.py): when the p99 of event_time ->
    # written to the log over the last `freshness_window_s`, or the lag at the current rate,
    # stays above the SLO for `pool_upscale_delay_s`, the job raises the pool's floor by one
    # actor; after `pool_downscale_delay_s` well within it (half), it lowers the floor by one.
    # 0 = no SLO: Ray Data's utilisation rule alone sizes the pool.
    freshness_slo_p99_s: float = 3.0
    freshness_window_s: float = 30.0
    pool_upscale_delay_s: float = 5.0
    pool_downscale_delay_s: float = 60.0

    def __post_init__(self) -> None:
        if self.freshness_slo_p99_s < 0:
            raise ValueError(
                f"freshness_slo_p99_s must be >= 0 (0 = no SLO), got {self.freshness_slo_p99_s}"
            )
        _positive("freshness_window_s", self.freshness_window_s)
        for name in ("pool_upscale_delay_s", "pool_downscale_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        _positive("retry_backoff_s", self.retry_backoff_s)
        if self.retry_backoff_max_s < self.retry_backoff_s:
            raise ValueError(
                f"retry_backoff_max_s ({self.retry_backoff_max_s}) must be >= "
                f"retry_backoff_s ({self.retry_backoff_s})"
            )
        _positive("max_inflight_mib", self.max_inflight_mib)
        _positive("max_batches_per_actor", self.max_batches_per_actor)
        _positive("max_poll_records", self.max_poll_records)
        if self.batch_latency_budget_ms < 0 or self.commit_interval_ms < 0:
            raise ValueError("batch_latency_budget_ms and commit_interval_ms must be >= 0")
        _positive("poll_timeout_ms", self.poll_timeout_ms)
        _positive("embedders_min", self.embedders_min)
        if self.embedders_max < self.embedders_min:
            raise ValueError(
                f"embedders_max ({self.embedders_max}) must be >= embedders_min "
                f"({self.embedders_min})"
            )
        if self.embedder_num_cpus < 0 or self.embedder_num_gpus < 0 or self.reader_num_cpus < 0:
            raise ValueError("num_cpus / num_gpus must be >= 0")


# What each deployment does unless told otherwise: Ray's defaults, but for scaling up
# sooner. A shard scales down late: a new shard replica replays its log before it serves.
SHARD_AUTOSCALING: dict[str, Any] = {
    "min_replicas": 1,
    "max_replicas": 1,
    "target_ongoing_requests": 2.0,
    "upscale_delay_s": 10.0,
    "downscale_delay_s": 600.0,
    "look_back_period_s": 30.0,
    "metrics_interval_s": 10.0,
}
# The ingress is async (it waits on the encoder and the shards): many requests in flight
# per replica are cheap.
INGRESS_AUTOSCALING: dict[str, Any] = {
    **SHARD_AUTOSCALING,
    "max_replicas": 2,
    "target_ongoing_requests": 64.0,
    "downscale_delay_s": 300.0,
}
# The query encoder batches texts: one batch in flight per replica is its target.
ENCODER_AUTOSCALING: dict[str, Any] = {
    **INGRESS_AUTOSCALING,
    "target_ongoing_requests": 32.0,
}


def autoscaling_config(key: str, settings: Mapping[str, Any]) -> AutoscalingConfig:
    """Ray Serve's AutoscalingConfig of `settings`; a ValueError naming `key` if Ray refuses it
    or a key is not one of its fields (pydantic would ignore a misspelt key)."""
    from ray.serve.config import AutoscalingConfig  # Serve's own check, where a config is built

    unknown = sorted(set(settings) - set(AutoscalingConfig.model_fields))
    if unknown:
        known = ", ".join(sorted(AutoscalingConfig.model_fields))
        raise ValueError(f"{key}.{unknown[0]}: not a Ray Serve autoscaling key (known: {known})")
    try:
        return AutoscalingConfig(**settings)
    except ValueError as exc:  # pydantic's ValidationError
        errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
        where = ".".join(str(part) for part in errors[0]["loc"]) if errors else ""
        message = errors[0]["msg"] if errors else str(exc)
        raise ValueError(f"{key}{'.' + where if where else ''}: {message}") from None


# The most queries one batch search request may hold, whatever the config says (the HTTP
# schema's bound; serve.max_batch_queries sets the deployment's own).
MAX_BATCH_QUERIES = 1000


@dataclass(frozen=True)
class ServeConfig:
    """The Ray Serve application: HTTP address, per-deployment resources, scaling, limits, keys."""

    host: str = "127.0.0.1"
    port: int = 8000
    # Serve's gRPC proxy (serve/grpc_api.py) beside HTTP; 0 = none. Off by default: Serve
    # binds it on every interface ([::]), where HTTP keeps to `host`.
    grpc_port: int = 0
    app_name: str = "pinstream"
    route_prefix: str = "/"
    ingress_num_cpus: float = 0.1
    ingress_max_ongoing_requests: int = 256
    shard_num_cpus: float = 0.1
    encoder_num_cpus: float = 0.25
    encoder_num_gpus: float = 0.0
    encoder_threads: int = 1
    encoder_max_batch_size: int = 32
    encoder_batch_wait_s: float = 0.0
    shard_timeout_s: float = 2.0
    # Every deployment (the ingress, the query encoder, each shard) is scaled by Serve from
    # Ray Serve's own AutoscalingConfig (its keys; those left out take Ray's defaults): in
    # [min_replicas, max_replicas], aiming at target_ongoing_requests per replica; min == max:
    # that many.
    ingress_autoscaling: dict[str, Any] = field(default_factory=lambda: dict(INGRESS_AUTOSCALING))
    encoder_autoscaling: dict[str, Any] = field(default_factory=lambda: dict(ENCODER_AUTOSCALING))
    shard_autoscaling: dict[str, Any] = field(default_factory=lambda: dict(SHARD_AUTOSCALING))
    shard_max_ongoing_requests: int = 32
    # Cross-request batching at a shard replica: concurrent queries are searched as one FAISS
    # call, up to this many, waiting at most this long for a batch to fill.
    shard_max_batch_size: int = 64
    shard_batch_wait_s: float = 0.0
    # Cross-request batching at the ingress: the single searches of a generation that reach
    # an ingress replica together go to each shard as one call of at most this many; one that
    # arrives while a batch is in flight waits for it, this long at most.
    fan_out_max_batch_size: int = 64
    fan_out_max_wait_s: float = 0.05
    # Hedged shard requests: a search not answered by this quantile of the shard's observed
    # latency goes to a second replica too, and the first answer wins (0 = off; only where a
    # shard deployment may run 2 or more replicas).
    hedge_quantile: float = 0.95
    hedge_min_samples: int = 20
    # Readiness: a new shard replica takes traffic only once it has applied its log
    # partition to within `shard_ready_max_lag` records and a poll found nothing new
    # for `shard_ready_idle_s`; it gives up (and Serve retries it) after the timeout.
    shard_ready_max_lag: int = 0
    shard_ready_idle_s: float = 0.5
    shard_ready_timeout_s: float = 300.0
    snapshot_poll_s: float = 5.0
    traffic_poll_s: float = 1.0
    # A policy's fallback_share sets the fallback's bar from the primary's last
    # `fallback_window` top scores, once it has `fallback_min_samples` of them.
    fallback_window: int = 2000
    fallback_min_samples: int = 100
    recall_sample_rate: float = 0.01
    # Requests: API keys (empty = no auth; PINSTREAM_API_KEYS adds comma-separated
    # keys) and the largest request body accepted.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    max_body_bytes: int = 1024 * 1024
    max_batch_queries: int = 64
    # Ray Serve's data path, set in the environment of the Ray that the stack starts
    # (serve/data_path.py SERVE_ENVIRONMENT says the variables; on a cluster, its pods' env).
    throughput_mode: ThroughputMode = "optimized"
    # How long a stopping ingress replica still answers in those modes, so that a load
    # balancer in front takes it out first (Ray's default is 30 s; nothing is in front here).
    ingress_drain_s: float = 1.0

    @property
    def ingress_scaling(self) -> AutoscalingConfig:
        """`ingress_autoscaling` as Ray Serve's AutoscalingConfig, checked by Ray's own rules."""
        return autoscaling_config("ingress_autoscaling", self.ingress_autoscaling)

    @property
    def encoder_scaling(self) -> AutoscalingConfig:
        """`encoder_autoscaling` as Ray Serve's AutoscalingConfig, checked by Ray's own rules."""
        return autoscaling_config("encoder_autoscaling", self.encoder_autoscaling)

    @property
    def shard_scaling(self) -> AutoscalingConfig:
        """`shard_autoscaling` as Ray Serve's AutoscalingConfig, checked by Ray's own rules."""
        return autoscaling_config("shard_autoscaling", self.shard_autoscaling)

    @property
    def encoder_max_ongoing_requests(self) -> int:
        """Requests a query encoder replica takes at once: a batch filling while one runs."""
        return 2 * self.encoder_max_batch_size

    def __post_init__(self) -> None:
        for name in ("port", "grpc_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be 0..65535, got {getattr(self, name)}")
        for name in (
            "ingress_max_ongoing_requests",
            "encoder_max_batch_size",
            "shard_timeout_s",
            "shard_max_ongoing_requests",
            "shard_max_batch_size",
            "fan_out_max_batch_size",
            "hedge_min_samples",
            "shard_ready_idle_s",
            "shard_ready_timeout_s",
            "snapshot_poll_s",
            "traffic_poll_s",
            "fallback_window",
            "fallback_min_samples",
            "max_body_bytes",
            "max_batch_queries",
        ):
            _positive(name, getattr(self, name))
        for name in (
            "ingress_drain_s",
            "encoder_batch_wait_s",
            "shard_batch_wait_s",
            "fan_out_max_wait_s",
            "encoder_num_gpus",
            "encoder_threads",
            "shard_ready_max_lag",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.recall_sample_rate <= 1.0:
            raise ValueError(f"recall_sample_rate must be in [0, 1], got {self.recall_sample_rate}")
        if self.max_batch_queries > MAX_BATCH_QUERIES:
            raise ValueError(
                f"max_batch_queries must be <= {MAX_BATCH_QUERIES}, got {self.max_batch_queries}"
            )
        if self.fallback_min_samples > self.fallback_window:
            raise ValueError(
                f"fallback_min_samples ({self.fallback_min_samples}) must be "
                f"<= fallback_window ({self.fallback_window})"
            )
        if not 0.0 <= self.hedge_quantile < 1.0:
            raise ValueError(f"hedge_quantile must be in [0, 1), got {self.hedge_quantile}")
        for key, scaling, most in (
            ("ingress_autoscaling", self.ingress_scaling, "ingress_max_ongoing_requests"),
            ("encoder_autoscaling", self.encoder_scaling, "encoder_max_ongoing_requests"),
            ("shard_autoscaling", self.shard_scaling, "shard_max_ongoing_requests"),
        ):
            target = scaling.target_ongoing_requests
            if target is not None and target > getattr(self, most):
                # Serve never scales up when a replica cannot take its target.
                raise ValueError(
                    f"{key}.target_ongoing_requests ({target}) must be "
                    f"<= {most} ({getattr(self, most)})"
                )
        for i, key in enumerate(self.api_keys):
            if not key or any(c.isspace() or c == "," for c in key):
                raise ValueError(f"api_keys[{i}] must be non-empty, without spaces or commas")


# Schemes an image_url may have: object stores and local files through pyarrow.fs, the web
# through streams/image_fetch.py's checked HTTP client.
IMAGE_SCHEMES = ("file", "s3", "gs", "http", "https")
_LABEL = r"[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")


@dataclass(frozen=True)
class ImagesConfig:
    """Pin images: whether ingest fetches and decodes each pin's `image_url`, and the limits
    that keep the fetcher from being an SSRF hole or a decompression bomb's victim.

    schemes: the URL schemes accepted (of IMAGE_SCHEMES). allowed_hosts: the only hosts an
        http(s) URL may name, exactly (lower case; an IP literal only if listed); empty = no
        web host. allow_private_addresses: whether those hosts may resolve to private,
        loopback, link-local or other non-global addresses (only for a local test or a
        private image service). max_bytes, timeout_s: the most bytes read and the longest
        time taken per image, whatever its scheme. max_pixels: the largest image (width x
        height) decoded. image_size: the side of the square RGB image the decoder returns.
    fetch_concurrency: images fetched at once by one fetch stage actor (threads); fetchers,
        fetch_num_cpus: the stage's actors and the logical CPUs of each.
    text_counts_without_image: a pin whose image fails still gets its text embedded (true)
        or goes to the DLQ with the image's reason (false).
    """

    enabled: bool = False
    schemes: tuple[str, ...] = IMAGE_SCHEMES
    allowed_hosts: tuple[str, ...] = ()
    allow_private_addresses: bool = False
    max_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 10.0
    max_pixels: int = 40_000_000
    image_size: int = 224
    fetch_concurrency: int = 8
    fetchers: int = 1
    fetch_num_cpus: float = 0.25
    text_counts_without_image: bool = False

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "image_size", "fetch_concurrency", "fetchers"):
            _positive_int(name, getattr(self, name))
        _positive("timeout_s", self.timeout_s)
        if self.fetch_num_cpus < 0:
            raise ValueError(f"fetch_num_cpus must be >= 0, got {self.fetch_num_cpus}")
        for i, scheme in enumerate(self.schemes):
            if scheme not in IMAGE_SCHEMES:
                raise ValueError(
                    f"schemes[{i}] must be one of {', '.join(IMAGE_SCHEMES)}, got {scheme!r}"
                )
        for i, host in enumerate(self.allowed_hosts):
            # A host as the fetcher compares it: lower case, no scheme, port or path.
            if not isinstance(host, str) or not (_HOSTNAME.fullmatch(host) or _is_ip(host)):
                raise ValueError(
                    f"allowed_hosts[{i}] must be a lower-case host name or IP address "
                    f"(no scheme, port or path), got {host!r}"
                )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class StorageConfig:
    """Where snapshots, model artifacts and run state live (a local path or a URI)."""

    root: str = "var/pinstream"


@dataclass(frozen=True)
class RayConfig:
    """Which Ray to use: `local` starts one in-process; anything else is passed to ray.init."""

    address: str = "local"
    num_cpus: int = 4

    def __post_init__(self) -> None:
        _positive("num_cpus", self.num_cpus)


@dataclass(frozen=True)
class PinstreamConfig:
    """The whole configuration of one pinstream deployment."""

    broker: BrokerConfig = field(default_factory=BrokerConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)

    def with_value(self, dotted: str, value: Any) -> PinstreamConfig:
        """Return a copy with one value replaced, e.g. `cfg.with_value("serve.port", 8123)`."""
        return replace_path(self, dotted, value)

    def with_values(self, changes: Mapping[str, Any]) -> PinstreamConfig:
        """Return a copy with several values replaced, each checked as with_value does."""
        cfg: PinstreamConfig = self
        for dotted, value in changes.items():
            cfg = cfg.with_value(dotted, value)
        return cfg

    def with_absolute_paths(self) -> PinstreamConfig:
        """A copy whose local storage root and model registry are absolute paths, so that
        every process (Ray workers, Serve replicas, other commands) finds the same folders."""
        paths = {"storage.root": self.storage.root, "model.registry": self.model.registry}
        return self.with_values(
            {key: os.path.abspath(path) for key, path in paths.items() if "://" not in path}
        )

    def snapshot_root(self, shard: int) -> str:
        """Where the snapshots of one shard live: keyed by the embeddings log they fold, so a
        snapshot is only ever resumed against its own log."""
        return f"{self.storage.root.rstrip('/')}/snapshots/{self.topics.embeddings}/shard-{shard}"

    def router_root(self) -> str:
        """Where the centroid router of this config's index generation lives: keyed by the
        embeddings log its partitions route, like the snapshots (shards/router_store.py)."""
        return f"{self.storage.root.rstrip('/')}/routers/{self.topics.embeddings}"

    def for_generation(self, generation: str, model_name: str) -> PinstreamConfig:
        """The config of another index generation beside this one: its model, and its own
        embeddings log, dead-letter topic, ingest consumer group and snapshots (call it on the
        base config)."""
        return self.with_values(
            {
                "model.name": model_name,
                "model.generation": generation,
                "topics.embeddings": f"{self.topics.embeddings}.{generation}",
                "topics.dlq": f"{self.topics.dlq}.{generation}",
                "ingest.consumer_group": f"{self.ingest.consumer_group}.{generation}",
            }
        )

    def namespaced(self, tag: str) -> PinstreamConfig:
        """A copy whose topics, consumer group and Serve app carry `tag`, so that several
        runs (tests, benchmarks) share one broker and one Ray without meeting."""
        return self.with_values(
            {
                "topics.pins": f"{self.topics.pins}-{tag}",
                "topics.dlq": f"{self.topics.pins}-{tag}.dlq",
                "topics.embeddings": f"{self.topics.embeddings}-{tag}",
                "ingest.consumer_group": f"{self.ingest.consumer_group}-{tag}",
                "serve.app_name": f"{self.serve.app_name}-{tag}",
            }
        )


def save_config(cfg: PinstreamConfig, path: str | Path) -> None:
    """Write `cfg` as YAML that `load_config` reads back to an equal config."""
    Path(path).write_text(
        yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False), encoding="utf-8"
    )


def load_config(path: str | Path | None = None) -> PinstreamConfig:
    """Load and check a config file (default: the embedded `conf/local.yaml`)."""
    return build(PinstreamConfig, load_yaml(path or LOCAL_CONFIG))
