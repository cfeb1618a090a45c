"""Continuous ingest: Kafka `pins` -> Ray Data (parse, embed in warm actors) -> embeddings log.

One Ray Data execution lives as long as the job, so embedder actors stay warm:
the model loads once per actor, never per micro-batch. The driver writes every
finished record to the embeddings log or the DLQ, and every `commit_interval_ms`
commits a checkpoint (streams/checkpoint.py): every write's ack checked, then the
source offsets they cover committed.

Failures are of two kinds. A record's own (undecodable, refused by the encoder) is
routed to the DLQ with its reason by the stages, and the stream goes on. One that is
not the data's (the broker away, a write not acked, a lost actor) makes the attempt
fail: the job reports `retrying` with the reason and starts again from the last good
commit after a backoff, for as long as it takes. Anything else is a bug: it stops the
job, reported as `stopped` with the error, and raises.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import pyarrow as pa
import ray
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from ray.exceptions import RayError

from conf.config import PinstreamConfig
from encoder.embedder import Embedder
from jobs.embedder_pool import EmbedderPool
from jobs.ingest_metrics import IngestMetrics
from jobs.ingest_scaling import IngestScaling
from shards.router_store import load_router
from streams.checkpoint import Checkpoint
from streams.dead_letter import DeadLetter, DeadLetterWriter
from streams.embeddings_log import EmbeddingsLogWriter, log_rows
from streams.exceptions import StreamError
from streams.image_stage import FetchImages
from streams.ingest_health import IngestHealth, State, write_health
from streams.kafka_io import KafkaClientSettings, assigned_consumer, committed_positions
from streams.kafka_source import KafkaSource
from streams.parse_stage import ParseEvents
from streams.poll_batch import spans_of, unpack

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0
# A draining stop ends after this long without a record (each idle partition sends an
# empty batch every second, so this is over a second of nothing from every partition).
DRAIN_IDLE_S = 2.0
# Not the data's fault: retried from the last good commit. Anything else is a bug.
RETRIED = (RayError, KafkaError, StreamError)
# Ray Data names a map_batches operator after its class; the pool's floor is kept on this one.
EMBEDDER_OPERATOR = f"MapBatches({Embedder.__name__})"


@dataclass
class IngestStats:
    """What one run of the job has done so far."""

    events: int = 0
    embedded: int = 0
    deletes: int = 0
    dead_letters: int = 0
    batches: int = 0
    retries: int = 0
    committed: dict[int, int] = field(default_factory=dict)


def build_pipeline(
    cfg: PinstreamConfig,
    start_offsets: dict[int, int],
    idle_stop_s: float | None,
    pool: EmbedderPool | None = None,
):
    """The Ray Data dataset: read poll batches per partition, parse, embed in an actor pool
    (which keeps the floor of `pool`, when given, and reports its size there)."""
    context = ray.data.DataContext.get_current()
    context.target_max_block_size = 1  # one poll = one block; see streams/poll_batch.py
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False
    # Backpressure: when producers outpace the encoders, queued poll batches fill this
    # budget and Ray Data pauses the partition reads; nothing is dropped.
    context.execution_options.resource_limits = context.execution_options.resource_limits.copy(
        object_store_memory=cfg.ingest.max_inflight_mib * 1024 * 1024
    )
    source = KafkaSource(
        bootstrap=cfg.broker.bootstrap,
        topic=cfg.topics.pins,
        start_offsets=start_offsets,
        max_poll_records=cfg.ingest.max_poll_records,
        poll_timeout_ms=cfg.ingest.poll_timeout_ms,
        idle_stop_s=idle_stop_s,
        batch_budget_ms=cfg.ingest.batch_latency_budget_ms,
        client=KafkaClientSettings.of(cfg.broker),
    )
    reader_cpus = cfg.ingest.reader_num_cpus
    # One never-ending read task per partition, all running at once: without the
    # override Ray Data splits every block to reach its default parallelism (one poll
    # becomes dozens of blocks), and without `concurrency` it may start fewer tasks
    # than partitions, starving the rest.
    partitions = len(start_offsets)
    dataset = ray.data.read_datasource(
        source, num_cpus=reader_cpus, override_num_blocks=partitions, concurrency=partitions
    )
    # Parsing runs inside each partition's read task: Ray Data fuses a map of the same
    # concurrency and resources into the read. A separate parse actor cost every poll one
    # more hand-off, up to a turn of the executor's loop (0.1 s) of freshness.
    dataset = dataset.map_batches(
        ParseEvents(),
        batch_size=None,
        batch_format="pyarrow",
        num_cpus=reader_cpus,
        compute=ray.data.TaskPoolStrategy(size=partitions),
    )
    if cfg.images.enabled:  # each pin's image fetched and decoded on CPU workers, bounded
        dataset = dataset.map_batches(
            FetchImages,
            fn_constructor_kwargs={"images": cfg.images},
            batch_size=None,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=cfg.images.fetchers),
            num_cpus=cfg.images.fetch_num_cpus,
        )
    dataset = dataset.map_batches(
        Embedder,
        fn_constructor_kwargs={"model": cfg.model},
        batch_size=None,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(
            min_size=cfg.ingest.embedders_min,
            max_size=cfg.ingest.embedders_max,
            max_tasks_in_flight_per_actor=cfg.ingest.max_batches_per_actor,
        ),
        num_cpus=cfg.ingest.embedder_num_cpus,
        num_gpus=cfg.ingest.embedder_num_gpus,
    )
    if pool is not None:  # this dataset's own context (read_datasource copied the current one)
        dataset.context.custom_execution_callback_classes.append(pool.callback())
    return dataset


class IngestJob:
    """Runs the pipeline and owns the writes and offset commits; stop it with `stop()`."""

    def __init__(self, cfg: PinstreamConfig, idle_stop_s: float | None = None) -> None:
        if cfg.broker.is_local:
            raise ValueError("IngestJob needs a resolved bootstrap address, not 'local'")
        self.cfg = cfg
        self.idle_stop_s = idle_stop_s
        self.stats = IngestStats()
        self.health = IngestHealth("starting")
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._client = KafkaClientSettings.of(cfg.broker)
        self._metrics: IngestMetrics | None = None
        self._failures = 0  # attempts failed since the last good checkpoint
        # Centroid routing: refused here, before any read, when the generation has no router.
        self._router = load_router(cfg)
        settings = cfg.ingest
        pool = EmbedderPool(
            EMBEDDER_OPERATOR,
            settings.embedders_min,
            settings.embedders_max,
            backlog_delay_s=settings.pool_upscale_delay_s,
        )
        self.scaling = IngestScaling(settings, pool)

    def stop(self, drain_s: float = 0.0) -> None:
        """Ask the job to return after the batch in hand or, with `drain_s`, once the stream
        has gone idle (every event that reached the broker ingested), within `drain_s`."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()

    def run(self) -> IngestStats:
        """Ingest until stopped (or, with `idle_stop_s`, until the stream is idle).

        An attempt that fails for a reason that is not the data's is retried from the
        last good commit after a backoff; the records after it are read again, and the
        log's versions make the repeats harmless.
        """
        self._metrics = IngestMetrics(self.cfg.topics.pins)
        try:
            while not self._stop.is_set():
                try:
                    self._attempt()
                    break
                except RETRIED as exc:
                    self._retry_after(exc)
        except BaseException as exc:
            self._report("stopped", _reason(exc))
            raise
        self._report("stopped", "stopped on request" if self._stop.is_set() else "stream idle")
        return self.stats

    def _retry_after(self, exc: BaseException) -> None:
        self._failures += 1
        self.stats.retries += 1
        settings = self.cfg.ingest
        delay = min(
            settings.retry_backoff_max_s, settings.retry_backoff_s * 2 ** (self._failures - 1)
        )
        reason = _reason(exc)
        log.warning("ingest: %s; retrying from the last commit in %.1f s", reason, delay)
        self._report("retrying", reason)
        self._stop.wait(delay)

    def _attempt(self) -> None:
        """One pipeline from the last good commit, until stopped, idle or failed."""
        cfg = self.cfg
        with ExitStack() as clients:
            embeddings = clients.enter_context(
                EmbeddingsLogWriter(
                    cfg.broker.bootstrap,
                    cfg.topics.embeddings,
                    cfg.shards.count,
                    self._client,
                    None if self._router is None else self._router.owner_shards,
                )
            )
            dead_letters = clients.enter_context(
                DeadLetterWriter(cfg.broker.bootstrap, cfg.topics.dlq, self._client)
            )
            committer = clients.enter_context(
                assigned_consumer(cfg.broker.bootstrap, cfg.ingest.consumer_group, self._client)
            )
            start = committed_positions(committer, cfg.topics.pins, self._client)
            log.info("ingest: reading %s from offsets %s", cfg.topics.pins, start)
            checkpoint = Checkpoint(
                committer, cfg.topics.pins, start, [embeddings, dead_letters], self._client
            )
            self._commit(checkpoint, force=True)
            pipeline = build_pipeline(cfg, start, self.idle_stop_s, self.scaling.pool)
            self._consume(pipeline, checkpoint, committer, embeddings, dead_letters)

    def _consume(
        self,
        pipeline,
        checkpoint: Checkpoint,
        committer: KafkaConsumer,
        embeddings: EmbeddingsLogWriter,
        dead_letters: DeadLetterWriter,
    ) -> None:
        last_progress = last_commit = last_records = time.monotonic()
        for polls in pipeline.iter_batches(
            batch_size=None, batch_format="pyarrow", prefetch_batches=0
        ):
            records = unpack(polls)
            now = time.monotonic()
            if records.num_rows:
                self._write(records, embeddings, dead_letters)
                last_records = now
            checkpoint.add(spans_of(polls))
            self._steer_pool()
            if now - last_commit >= self.cfg.ingest.commit_interval_ms / 1000:
                self._commit(checkpoint)
                last_commit = now
            if now - last_progress > PROGRESS_EVERY_S:
                last_progress = now
                self._report_progress(committer, checkpoint)
            if self._stop.is_set() and (
                now >= self._drain_until or now - last_records >= DRAIN_IDLE_S
            ):
                break
        self._commit(checkpoint)

    def _commit(self, checkpoint: Checkpoint, force: bool = False) -> None:
        """Commit the checkpoint; a good one ends any run of failures."""
        if checkpoint.empty and not force:
            return
        self.stats.committed = checkpoint.commit()
        if self._failures or self.health.state != "running":
            self._failures = 0
            self._report("running")

    def _report(self, state: State, reason: str | None = None) -> None:
        """Publish the job's health: state changes and pool moves at once, progress every few
        seconds."""
        since = self.health.since if state == self.health.state else time.time()
        pool = self.scaling.report()
        if self._metrics is not None:
            self._metrics.record_pool(pool)
        health = IngestHealth(
            state=state,
            reason=reason,
            since=since,
            retries=self._failures,
            events=self.stats.events,
            dead_letters=self.stats.dead_letters,
            committed=dict(self.stats.committed),
            lag=self.scaling.lag,
            pool=pool,
        )
        try:
            write_health(self.cfg.storage.root, health)
        except OSError as exc:  # the report is for people; ingest goes on without it
            log.warning("ingest: cannot write its health under %s: %s", self.cfg.storage.root, exc)
        # Only once written: what /healthz shows is never behind what the job says it is in.
        self.health = health

    def _report_progress(self, committer: KafkaConsumer, checkpoint: Checkpoint) -> None:
        committed = checkpoint.tracker.committable()
        lag = _lag(committer, self.cfg.topics.pins, committed, self._client)
        self.scaling.measured_lag(lag)
        self._report(self.health.state, self.health.reason)
        if self._metrics is not None:
            self._metrics.record_lag(lag)
        log.info("ingest: %s lag=%s pool=%s", self.stats, lag, self.scaling.pool.size)

    def _steer_pool(self) -> None:
        """Set the embedder pool's floor by the freshness rule; report when it moves."""
        decision = self.scaling.steer()
        if decision is None:
            return
        log.info("ingest: embedder pool %s", decision.describe())
        if self._metrics is not None:
            self._metrics.record_decision(decision)
        self._report(self.health.state, self.health.reason)

    def _write(
        self, records: pa.Table, embeddings: EmbeddingsLogWriter, dead_letters: DeadLetterWriter
    ) -> None:
        errors = records.column("error").to_pylist()
        valid = pa.array([e is None for e in errors])
        for row in records.filter(pa.compute.invert(valid)).to_pylist():
            dead_letters.write(
                DeadLetter(
                    reason=row["error"],
                    topic=self.cfg.topics.pins,
                    partition=row["partition"],
                    offset=row["offset"],
                    key=row["key"],
                    value=row["value"],
                )
            )
        good = records.filter(valid)
        if good.num_rows:
            rows = log_rows(
                pin_ids=good.column("pin_id"),
                ops=good.column("op"),
                versions=good.column("offset"),  # a pin's events are ordered by offset
                generation=self.cfg.model.generation,
                vectors=good.column("vector"),
                titles=good.column("title"),
                boards=good.column("board"),
                event_times=good.column("event_time"),
                dim=self.cfg.shards.dim,
            )
            embeddings.write(rows)
        self.scaling.written(records.num_rows, good.column("event_time").to_pylist())
        deletes = sum(1 for op in good.column("op").to_pylist() if op == "delete")
        self.stats.events += records.num_rows
        self.stats.dead_letters += records.num_rows - good.num_rows
        self.stats.deletes += deletes
        self.stats.embedded += good.num_rows - deletes
        self.stats.batches += 1
        if self._metrics is not None:
            self._metrics.record_batch(
                records.num_rows, good.num_rows - deletes, records.num_rows - good.num_rows
            )


def _lag(
    committer: KafkaConsumer, topic: str, committed: dict[int, int], client: KafkaClientSettings
) -> dict[int, int]:
    ends = committer.end_offsets(
        [TopicPartition(topic, p) for p in committed], timeout_ms=client.request_timeout_ms
    )
    return {tp.partition: max(0, end - committed[tp.partition]) for tp, end in ends.items()}


def _reason(exc: BaseException) -> str:
    """The error's type and first line: a Ray error's message goes on with a remote traceback."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
