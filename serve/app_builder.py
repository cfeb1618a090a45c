"""The application builder Ray's own CLI imports: `serve run conf/serve.yaml`, `serve deploy`.

The Serve config names `serve.app_builder:app_builder` as its import path and passes
`args`: `config` (a pinstream config file, default conf/local.yaml) and `bootstrap`
(the Kafka cluster, host:port[,host:port]).
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from conf.config import load_config
from conf.errors import ConfigError
from serve.app import build_app

ARGS = ("bootstrap", "config")


def app_builder(args: dict[str, Any]) -> Application:
    """Build the pinstream Serve application from the Serve config's `args`."""
    unknown = sorted(set(args) - set(ARGS))
    if unknown:
        raise ConfigError(f"serve app args: unknown {unknown} (known: {', '.join(ARGS)})")
    config = args.get("config")
    cfg = load_config(str(config) if config is not None else None)
    if args.get("bootstrap") is not None:
        cfg = cfg.with_value("broker.bootstrap", str(args["bootstrap"]))
    if cfg.broker.is_local:
        raise ConfigError(
            "serve app args: the Serve app needs a real Kafka cluster, and broker.bootstrap "
            f"of {config or 'conf/local.yaml'} is 'local' (the embedded broker exists only inside "
            "`pinstream up`). Set `bootstrap: host:port` under the application's `args` in the "
            "Serve config, or name a config file whose broker.bootstrap is host:port."
        )
    return build_app(cfg)
