"""The sealer skips an embeddings-log record that no shard may apply and writes it to the DLQ
topic, with its partition and offset, before its snapshot moves past it."""

from __future__ import annotations

import numpy as np
from kafka import KafkaProducer

from conf.config import PinstreamConfig
from jobs.sealer import seal_shard
from streams.dead_letter import DeadLetter
from streams.embeddings_log import encode_rows, upsert_rows
from streams.kafka_io import drain
from streams.synthetic import PinGenerator


def test_a_bad_log_record_goes_to_the_dlq_with_its_offset(cfg: PinstreamConfig) -> None:
    events = [p.event for p in PinGenerator(seed=8, id_prefix="dl").pins(4)]
    vectors = np.random.default_rng(0).standard_normal((4, cfg.shards.dim)).astype(np.float32)
    good = encode_rows(upsert_rows(events, vectors, 1, cfg.model.generation))
    producer = KafkaProducer(bootstrap_servers=cfg.broker.bootstrap)
    try:
        for value in (good, b"not an arrow stream", good):
            producer.send(cfg.topics.embeddings, value=value, partition=0).get(timeout=30)
    finally:
        producer.close(timeout=5)

    report = seal_shard(cfg, 0)

    assert report["published"] and report["bad_records"] == 1
    assert report["log_offset"] == 3
    (letter,) = [
        DeadLetter.from_json_bytes(r.value) for r in drain(cfg.broker.bootstrap, cfg.topics.dlq)
    ]
    assert (letter.topic, letter.partition, letter.offset) == (cfg.topics.embeddings, 0, 1)
    assert letter.value == b"not an arrow stream" and "truncated" in letter.reason
