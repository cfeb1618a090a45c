"""A checkpoint commits only what the broker acked: a write that is not acked within the
delivery timeout (the broker black-holed behind a proxy) fails the checkpoint, nothing
is committed, and the writer's next producer works once the network is back."""

from __future__ import annotations

import time

import pytest

from conf.config import PinstreamConfig
from streams.checkpoint import Checkpoint
from streams.dead_letter import DeadLetter, DeadLetterWriter
from streams.exceptions import CheckpointFailed
from streams.kafka_io import KafkaClientSettings, assigned_consumer, committed_offsets, drain
from streams.poll_batch import spans_table
from tests.integration.tcp_proxy import TcpProxy


def letter(offset: int) -> DeadLetter:
    return DeadLetter("test", "pins", 0, offset, b"k", b"v")


def test_an_unacked_write_fails_the_checkpoint_and_commits_nothing(
    faulty: tuple[TcpProxy, PinstreamConfig],
) -> None:
    proxy, cfg = faulty
    client = KafkaClientSettings.of(cfg.broker)
    bootstrap, group, topic = cfg.broker.bootstrap, cfg.ingest.consumer_group, cfg.topics.pins
    with (
        DeadLetterWriter(bootstrap, cfg.topics.dlq, client) as writer,
        assigned_consumer(bootstrap, group, client) as committer,
    ):
        checkpoint = Checkpoint(committer, topic, {0: 0, 1: 0, 2: 0}, [writer], client)
        writer.write(letter(0))
        checkpoint.add(spans_table([(0, 0, 1)]))
        assert checkpoint.commit() == {0: 1, 1: 0, 2: 0}

        writer.write(letter(1))  # sent, then the network fails before its ack
        proxy.blackhole()
        checkpoint.add(spans_table([(0, 1, 2)]))
        started = time.monotonic()
        with pytest.raises(CheckpointFailed, match="not committed"):
            checkpoint.commit()
        assert time.monotonic() - started < client.flush_timeout_s + 5  # a deadline held

    proxy.heal()
    assert committed_offsets(bootstrap, group, topic, client)[0] == 1  # only the acked span
    with DeadLetterWriter(bootstrap, cfg.topics.dlq, client) as writer:
        writer.write(letter(2))
        assert writer.flush() == 1
    offsets = sorted(
        DeadLetter.from_json_bytes(r.value).offset for r in drain(bootstrap, cfg.topics.dlq)
    )
    assert offsets[0] == 0 and offsets[-1] == 2  # offset 1 may or may not have landed
