"""Continuous ingest: Kafka `pins` -> Ray Data (parse, embed in warm actors) -> embeddings log.

One Ray Data execution lives as long as the job, so embedder actors stay warm:
the model loads once per actor, never per micro-batch. The driver writes every
finished record to the embeddings log or the DLQ, and every `commit_interval_ms`
waits for the acks and only then commits the source offsets they fully cover.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import pyarrow as pa
import ray
from kafka import KafkaConsumer, TopicPartition
from ray.exceptions import RayError

from conf.config import PinstreamConfig
from encoder.embedder import Embedder
from jobs.ingest_metrics import IngestMetrics
from streams.dead_letter import DeadLetter, DeadLetterWriter
from streams.embeddings_log import EmbeddingsLogWriter, log_schema
from streams.kafka_io import assigned_consumer, commit_offsets, committed_offsets
from streams.kafka_source import KafkaSource
from streams.offsets import OffsetTracker
from streams.parse_stage import ParseEvents
from streams.poll_batch import unpack

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0
MAX_PIPELINE_RESTARTS = 5


@dataclass
class IngestStats:
    """What one run of the job has done so far."""

    events: int = 0
    embedded: int = 0
    deletes: int = 0
    dead_letters: int = 0
    batches: int = 0
    pipeline_restarts: int = 0
    committed: dict[int, int] = field(default_factory=dict)


def build_pipeline(cfg: PinstreamConfig, start_offsets: dict[int, int], idle_stop_s: float | None):
    """The Ray Data dataset: read poll batches per partition, parse, embed in an actor pool."""
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
        linger_ms=cfg.ingest.linger_ms,
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
    # One long-lived actor: a task per poll batch would start a worker process per poll.
    dataset = dataset.map_batches(
        ParseEvents,
        batch_size=None,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=reader_cpus,
    )
    return dataset.map_batches(
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


class IngestJob:
    """Runs the pipeline and owns the writes and offset commits; stop it with `stop()`."""

    def __init__(self, cfg: PinstreamConfig, idle_stop_s: float | None = None) -> None:
        if cfg.broker.is_local:
            raise ValueError("IngestJob needs a resolved bootstrap address, not 'local'")
        self.cfg = cfg
        self.idle_stop_s = idle_stop_s
        self.stats = IngestStats()
        self._stop = threading.Event()
        self._log_schema = log_schema(cfg.shards.dim)
        self._metrics: IngestMetrics | None = None

    def stop(self) -> None:
        """Ask the job to finish the batch in hand and return."""
        self._stop.set()

    def run(self) -> IngestStats:
        """Ingest until stopped (or, with `idle_stop_s`, until the stream is idle).

        A failed pipeline (a dead actor Ray Data could not recover, a lost task) is
        rebuilt from the committed offsets: records after them are read again, and
        the log's versions make the repeats harmless.
        """
        cfg = self.cfg
        self._metrics = IngestMetrics(cfg.topics.pins)
        embeddings = EmbeddingsLogWriter(
            cfg.broker.bootstrap, cfg.topics.embeddings, cfg.shards.count
        )
        dead_letters = DeadLetterWriter(cfg.broker.bootstrap, cfg.topics.dlq)
        try:
            with assigned_consumer(cfg.broker.bootstrap, cfg.ingest.consumer_group) as committer:
                while True:
                    try:
                        self._run_pipeline(committer, embeddings, dead_letters)
                        return self.stats
                    except RayError as exc:
                        self.stats.pipeline_restarts += 1
                        if self.stats.pipeline_restarts > MAX_PIPELINE_RESTARTS:
                            raise
                        log.warning(
                            "ingest: pipeline failed (%s); restarting from committed offsets", exc
                        )
        finally:
            embeddings.close()
            dead_letters.close()

    def _run_pipeline(
        self,
        committer: KafkaConsumer,
        embeddings: EmbeddingsLogWriter,
        dead_letters: DeadLetterWriter,
    ) -> None:
        cfg = self.cfg
        start = committed_offsets(cfg.broker.bootstrap, cfg.ingest.consumer_group, cfg.topics.pins)
        log.info("ingest: reading %s from offsets %s", cfg.topics.pins, start)
        tracker = OffsetTracker(start)
        unacked: list[pa.Table] = []  # sent, not yet known to be acked: not committable
        last_progress = last_commit = time.monotonic()
        pipeline = build_pipeline(cfg, start, self.idle_stop_s)
        for polls in pipeline.iter_batches(
            batch_size=None, batch_format="pyarrow", prefetch_batches=0
        ):
            records = unpack(polls)
            if records.num_rows:
                self._write(records, embeddings, dead_letters)
                unacked.append(records.select(["partition", "offset"]))
            now = time.monotonic()
            if unacked and now - last_commit >= cfg.ingest.commit_interval_ms / 1000:
                self._flush_and_commit(committer, embeddings, dead_letters, tracker, unacked)
                last_commit = now
            if now - last_progress > PROGRESS_EVERY_S:
                last_progress = now
                self._report_progress(committer, tracker)
            if self._stop.is_set():
                break
        self._flush_and_commit(committer, embeddings, dead_letters, tracker, unacked)

    def _flush_and_commit(
        self,
        committer: KafkaConsumer,
        embeddings: EmbeddingsLogWriter,
        dead_letters: DeadLetterWriter,
        tracker: OffsetTracker,
        unacked: list[pa.Table],
    ) -> None:
        """Wait for every sent record's ack, then commit the offsets they cover."""
        if not unacked:
            return
        embeddings.flush()
        dead_letters.flush()
        for records in unacked:
            for partition, offsets in _offsets_by_partition(records).items():
                tracker.mark_done(partition, offsets)
        unacked.clear()
        commit_offsets(committer, self.cfg.topics.pins, tracker.committable())
        self.stats.committed = tracker.committable()

    def _report_progress(self, committer: KafkaConsumer, tracker: OffsetTracker) -> None:
        lag = _lag(committer, self.cfg.topics.pins, tracker.committable())
        if self._metrics is not None:
            self._metrics.record_lag(lag)
        log.info("ingest: %s lag=%s", self.stats, lag)

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
            rows = pa.table(
                {
                    "pin_id": good.column("pin_id"),
                    "op": good.column("op"),
                    "version": good.column("offset"),
                    "generation": pa.array([self.cfg.model.generation] * good.num_rows),
                    "vector": good.column("vector"),
                    "title": good.column("title"),
                    "board": good.column("board"),
                    "event_time": good.column("event_time"),
                },
                schema=self._log_schema,
            )
            embeddings.write(rows)
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


def _lag(committer: KafkaConsumer, topic: str, committed: dict[int, int]) -> dict[int, int]:
    ends = committer.end_offsets([TopicPartition(topic, p) for p in committed])
    return {tp.partition: max(0, end - committed[tp.partition]) for tp, end in ends.items()}


def _offsets_by_partition(records: pa.Table) -> dict[int, list[int]]:
    result: dict[int, list[int]] = {}
    partitions = records.column("partition").to_pylist()
    offsets = records.column("offset").to_pylist()
    for partition, offset in zip(partitions, offsets, strict=True):
        result.setdefault(partition, []).append(offset)
    return result
