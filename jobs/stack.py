"""The whole pinstream stack in one process: broker (when local), Ray, Serve, the ingest job.

Used by `pinstream up` and `pinstream demo`; `stop()` takes everything down again,
in reverse order, so no process is left behind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType

import ray
import requests
from ray import serve

from conf.config import PinstreamConfig
from jobs.ingest import IngestJob
from jobs.restore import restore_pins
from jobs.sealer import PeriodicSealer, seal_all
from jobs.stack_state import READY, STARTING, running_state, state_path, write_state
from serve.app import build_app
from serve.data_path import use_serve_environment
from serve.grpc_api import grpc_options
from streams.kafka_io import ensure_topics
from streams.local_broker import LocalBroker, free_loopback_port

log = logging.getLogger(__name__)
STOP_DRAIN_S = 30.0  # at most: on a clean stop, ingest what reached the embedded broker


def resolved_bootstrap(cfg: PinstreamConfig, given: str | None) -> str:
    """The Kafka address to use: given, configured, or the running local stack's."""
    if given:
        return given
    if not cfg.broker.is_local:
        return cfg.broker.bootstrap
    return str(running_state(cfg)["bootstrap"])


def connect_ray(cfg: PinstreamConfig) -> None:
    """Join the configured Ray cluster, or the running local stack's Ray."""
    if ray.is_initialized():
        return
    if cfg.ray.address != "local":
        ray.init(address=cfg.ray.address, log_to_driver=False, logging_level=_ray_log_level())
        return
    _enable_local_token_auth()
    ray.init(
        address=running_state(cfg)["ray_address"],
        log_to_driver=False,
        logging_level=_ray_log_level(),
    )


def _enable_local_token_auth() -> None:
    """Turn on Ray's token authentication in this process when this user has a token.

    The local stack's Ray starts with it (Ray 2.59+ turns it on for a cluster `ray.init`
    starts, its token in ~/.ray/auth_token), and a client must turn it on too before it
    connects: `ray.init` does so itself only when it finds a local cluster on its own, never
    for an address it is given, as the stack's is. Ray 2.60 has no public way to do this once
    `ray` is imported: the documented switch, RAY_AUTH_MODE=token, is read once, when `ray` is
    imported, and setting it later changes nothing (tried). So the one private call stays,
    here alone; it respects RAY_AUTH_MODE when the user set it.
    """
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def start_ray(cfg: PinstreamConfig) -> None:
    """Start a local Ray (`ray.address: local`) or connect to the configured cluster."""
    if ray.is_initialized():
        return
    if cfg.ray.address == "local":
        use_serve_environment(cfg.serve)
        ray.init(
            num_cpus=cfg.ray.num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=_ray_log_level(),
            # "Task ... failed. There are infinite retries remaining": news of a retry, shown
            # with -v (INFO) only. Without it a stop reads as failures: every actor task in
            # flight when Ray Data lets its actors go is announced as retried.
            _system_config={
                "enable_output_error_log_if_still_retry": _ray_log_level() <= logging.INFO
            },
        )
    else:
        ray.init(address=cfg.ray.address, log_to_driver=False, logging_level=_ray_log_level())


def _ray_log_level() -> int:
    """The level the command line chose for Ray's logger, which `ray.init` would set to INFO."""
    return logging.getLogger("ray").getEffectiveLevel()


def create_topics(cfg: PinstreamConfig) -> None:
    """Create the pins, DLQ and embeddings-log topics that do not exist yet."""
    topics = cfg.topics
    ensure_topics(
        cfg.broker.bootstrap,
        {topics.pins: topics.pins_partitions, topics.dlq: 1, topics.embeddings: cfg.shards.count},
        topics.replication_factor,
    )


class LocalStack:
    """Starts and stops the stack; usable as a context manager."""

    def __init__(self, cfg: PinstreamConfig, with_ingest: bool = True) -> None:
        self.cfg = cfg
        self.with_ingest = with_ingest
        self.broker: LocalBroker | None = None
        self.ingest: IngestJob | None = None
        self._ingest_thread: threading.Thread | None = None
        self._ingest_error: BaseException | None = None
        self.sealer: PeriodicSealer | None = None
        self.restored_pins: int | None = None  # pins brought back from the previous run

    @property
    def url(self) -> str:
        return f"http://{self.cfg.serve.host}:{self.cfg.serve.port}"

    def start(self, ready_timeout_s: float = 180.0) -> LocalStack:
        """Bring everything up and wait until the API answers /healthz with 200."""
        try:
            self._start(ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, ready_timeout_s: float) -> None:
        self.cfg = self.cfg.with_absolute_paths()  # replicas and the sealer share the folders
        if self.cfg.broker.is_local:
            self.broker = LocalBroker().start()
            self.cfg = self.cfg.with_value("broker.bootstrap", self.broker.bootstrap)
            log.info("local broker on %s", self.broker.bootstrap)
        if self.cfg.serve.port == 0:
            self.cfg = self.cfg.with_value("serve.port", free_loopback_port())
        create_topics(self.cfg)
        start_ray(self.cfg)
        # Before the API can answer: a client that sees /healthz healthy finds the file.
        self._write_state(STARTING)
        if self.broker is not None:
            # The local broker keeps nothing: the previous run's pins come back from its
            # snapshots, before any replica loads a snapshot (jobs/restore.py).
            self.restored_pins = restore_pins(self.cfg)
        if self.with_ingest:
            # Before the app: its embedder actors load their model while Serve deploys (the
            # replicas tail the log as it grows), so the first pins are not held up by both.
            self.ingest = IngestJob(self.cfg)
            self._ingest_thread = threading.Thread(
                target=self._run_ingest, name="ingest", daemon=True
            )
            self._ingest_thread.start()
        serve.start(
            http_options={"host": self.cfg.serve.host, "port": self.cfg.serve.port},
            grpc_options=grpc_options(self.cfg.serve),  # None when serve.grpc_port is 0
        )
        serve.run(
            build_app(self.cfg),
            name=self.cfg.serve.app_name,
            route_prefix=self.cfg.serve.route_prefix,
            blocking=False,
        )
        self._wait_healthy(ready_timeout_s)
        if self.cfg.shards.snapshot_interval_s > 0:
            self.sealer = PeriodicSealer(self.cfg, self.cfg.shards.snapshot_interval_s).start()
        self._write_state(READY)

    def _run_ingest(self) -> None:
        assert self.ingest is not None
        try:
            self.ingest.run()
        except BaseException as exc:
            self._ingest_error = exc
            log.exception("ingest job failed")

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"pinstream API at {self.url} not healthy after {timeout_s:.0f}s")

    def _write_state(self, status: str) -> None:
        state = {
            "status": status,
            "bootstrap": self.cfg.broker.bootstrap,
            "url": self.url,
            "pid": os.getpid(),
            "ray_address": ray.get_runtime_context().gcs_address,
            "restored_pins": self.restored_pins,
        }
        write_state(self.cfg, state)

    def _final_seal(self) -> None:
        """One last snapshot of every shard, once ingest stopped: with the local broker, whose
        log goes with it, snapshots are all that a restart gets back."""
        if self.ingest is None or (self.sealer is None and self.broker is None):
            return  # nothing ingested; or snapshots are another sealer's (one writer per root)
        if self.broker is not None and not self.broker.running:
            log.error("the local broker exited first: a restart restores the last snapshot only")
            return
        try:
            seal_all(self.cfg)
        except Exception as exc:  # the stack still stops; the previous snapshot stays good
            log.error("final snapshot failed, a restart restores the previous one: %s", exc)

    def check_ingest(self) -> None:
        """Raise the ingest job's error, if it died, or the periodic sealer's: without it,
        the embedded default's pins would not survive a restart."""
        if self._ingest_error is not None:
            raise RuntimeError("ingest job failed") from self._ingest_error
        if self.sealer is not None and self.sealer.error is not None:
            raise RuntimeError("the periodic sealer failed") from self.sealer.error

    def stop(self) -> None:
        """Stop the sealer, ingest, Serve, Ray and the broker, in that order."""
        if self.sealer is not None:
            self.sealer.stop()
        if self.ingest is not None and self._ingest_thread is not None:
            # The embedded broker keeps nothing: ingest what reached it before it goes.
            drain_s = STOP_DRAIN_S if self.broker is not None else 0.0
            self.ingest.stop(drain_s)
            self._ingest_thread.join(timeout=drain_s + 30)
            self._final_seal()
        if ray.is_initialized():
            try:
                self._stop_serve()
            finally:
                ray.shutdown()
        if self.broker is not None:
            self.broker.stop()
        state_path(self.cfg).unlink(missing_ok=True)

    def _stop_serve(self) -> None:
        if self.cfg.ray.address != "local":
            serve.shutdown()  # Serve on a cluster outlives this process unless taken down
            return
        # The local Ray goes next and takes Serve's controller and proxy with it. Not
        # serve.shutdown(): its controller kills itself while answering, which Ray reports on
        # the terminal as a failed task it retries ("ServeController.graceful_shutdown").
        for name in serve.status().applications:
            serve.delete(name)  # replicas stop gracefully, in-flight requests answered

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
