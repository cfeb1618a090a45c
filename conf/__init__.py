"""Typed, validated configuration (YAML in this folder)."""

from conf.config import (
    LOCAL_CONFIG,
    BrokerConfig,
    IngestConfig,
    ModelConfig,
    PinstreamConfig,
    RayConfig,
    ServeConfig,
    ShardsConfig,
    StorageConfig,
    TopicsConfig,
    load_config,
)
from conf.errors import ConfigError, PinstreamError

__all__ = [
    "LOCAL_CONFIG",
    "BrokerConfig",
    "ConfigError",
    "IngestConfig",
    "ModelConfig",
    "PinstreamConfig",
    "PinstreamError",
    "RayConfig",
    "ServeConfig",
    "ShardsConfig",
    "StorageConfig",
    "TopicsConfig",
    "load_config",
]
