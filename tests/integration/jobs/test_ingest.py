"""The ingest job on a real broker and Ray: the embeddings log equals the fold of the events."""

from __future__ import annotations

import numpy as np
import pytest

from conf.config import PinstreamConfig, ShardsConfig
from encoder.text_encoder import TextEncoder
from jobs.ingest import IngestJob
from shards.shard_state import ShardState
from streams.dead_letter import DeadLetter
from streams.embeddings_log import decode_rows
from streams.events import PinEvent
from streams.kafka_io import committed_offsets, drain
from streams.pin_text import pin_text
from streams.producer import PinProducer
from streams.routing import shard_of
from streams.synthetic import PinGenerator, malformed_events


def oracle_fold(events: list[PinEvent]) -> dict[str, str]:
    """pin_id -> newest title, for the live pins, folding events in produce order."""
    live: dict[str, str] = {}
    for event in events:
        if event.op == "upsert":
            live[event.pin_id] = event.title
        else:
            live.pop(event.pin_id, None)
    return live


def fold_log(cfg: PinstreamConfig) -> tuple[dict[str, str], int]:
    """Rebuild every shard from the embeddings log; return live pin -> title and the row count."""
    states = [ShardState(ShardsConfig(dim=cfg.shards.dim)) for _ in range(cfg.shards.count)]
    rows_seen = 0
    for record in drain(cfg.broker.bootstrap, cfg.topics.embeddings):
        rows = decode_rows(record.value)
        rows_seen += rows.num_rows
        assert {shard_of(p, cfg.shards.count) for p in rows["pin_id"].to_pylist()} == {
            record.partition
        }
        assert set(rows["generation"].to_pylist()) == {cfg.model.generation}
        states[record.partition].apply_rows(rows)
    live = {pin: info.title for state in states for pin, info in state.live_pins().items()}
    return live, rows_seen


def test_ingest_matches_the_oracle_and_resumes(cfg: PinstreamConfig, ray_session) -> None:
    generator = PinGenerator(seed=11, id_prefix="ing")
    pins = generator.pins(150)
    events = [p.event for p in pins]
    events += [generator.updated(p).event for p in pins[:20]]
    events += [generator.delete(p.event.pin_id) for p in pins[20:35]]
    bad = malformed_events()
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        for i, event in enumerate(events):
            producer.send(event)
            if i % 40 == 0 and bad:
                key, value, _ = bad.pop()
                producer.send_raw(key, value)
        for key, value, _ in bad:
            producer.send_raw(key, value)
        producer.flush()

    stats = IngestJob(cfg, idle_stop_s=2.0).run()

    n_bad = len(malformed_events())
    assert stats.events == len(events) + n_bad
    assert stats.dead_letters == n_bad
    live, rows = fold_log(cfg)
    assert live == oracle_fold(events)
    assert rows == len(events)
    letters = [
        DeadLetter.from_json_bytes(r.value) for r in drain(cfg.broker.bootstrap, cfg.topics.dlq)
    ]
    assert len(letters) == n_bad
    assert all(letter.reason and letter.topic == cfg.topics.pins for letter in letters)
    assert {letter.value for letter in letters} == {v for _, v, _ in malformed_events()}
    committed = committed_offsets(cfg.broker.bootstrap, cfg.ingest.consumer_group, cfg.topics.pins)
    assert sum(committed.values()) == len(events) + n_bad

    # A second run resumes from the committed offsets: only the new events are embedded.
    more = generator.pins(30, start=150)
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        producer.send_all(p.event for p in more)
    second = IngestJob(cfg, idle_stop_s=2.0).run()
    assert second.events == 30
    live, rows = fold_log(cfg)
    assert live == oracle_fold(events + [p.event for p in more])
    assert rows == len(events) + 30


def test_log_vectors_are_the_encoders(
    cfg: PinstreamConfig, ray_session, text_encoder: TextEncoder
) -> None:
    pins = PinGenerator(seed=5, id_prefix="vec").pins(20)
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        producer.send_all(p.event for p in pins)
    IngestJob(cfg, idle_stop_s=2.0).run()
    by_pin = {}
    for record in drain(cfg.broker.bootstrap, cfg.topics.embeddings):
        rows = decode_rows(record.value)
        for pin_id, vector in zip(
            rows["pin_id"].to_pylist(), rows["vector"].to_pylist(), strict=True
        ):
            by_pin[pin_id] = np.asarray(vector, dtype=np.float32)
    texts = [
        pin_text(p.event.title, p.event.description, p.event.board, p.event.tags) for p in pins
    ]
    expected = text_encoder.encode(texts)
    got = np.stack([by_pin[p.event.pin_id] for p in pins])
    cosines = (got * expected).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines.min()


def test_ingest_refuses_an_unresolved_broker() -> None:
    from conf.config import load_config

    with pytest.raises(ValueError, match="resolved bootstrap"):
        IngestJob(load_config())
