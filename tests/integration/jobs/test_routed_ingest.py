"""Ingest with centroid routing on a real broker and Ray: pins move shard, deletes hold, and the
shards' live sets together equal the fold of the events, each pin live on one shard."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder
from jobs.ingest import IngestJob
from shards.exceptions import RouterNotFound
from shards.router import CentroidRouter, train_router
from shards.router_store import save_router
from shards.shard_state import ShardState
from streams.embeddings_log import decode_rows
from streams.events import PinEvent
from streams.kafka_io import drain
from streams.pin_text import pin_text
from streams.producer import PinProducer
from streams.synthetic import PinGenerator
from tests.integration.conftest import unique_config
from tests.integration.jobs.test_ingest import oracle_fold

SHARDS, GROUPS = 3, 12


def text_of(event: PinEvent) -> str:
    return pin_text(event.title, event.description, event.board, event.tags)


def routed_config(bootstrap: str) -> PinstreamConfig:
    """A config of unique names on `bootstrap` whose pins are routed to shards by centroid."""
    return unique_config(bootstrap, shards=SHARDS).with_values(
        {"shards.routing": "centroid", "shards.route_groups": GROUPS, "shards.route_nprobe": 2}
    )


@dataclasses.dataclass(frozen=True)
class RoutedWorkload:
    """Events whose fold the shards must hold, the router they were routed by, and the pins
    that surely changed shard."""

    events: list[PinEvent]
    router: CentroidRouter
    movers: list[PinEvent]


def routed_workload(cfg: PinstreamConfig, prefix: str, encoder: TextEncoder) -> RoutedWorkload:
    """120 pins, 40 edits, pins moved to another shard, 16 deletes (one of a pin never
    written); trains the router on their vectors and saves it where `cfg`'s ingest reads it."""
    generator = PinGenerator(seed=21, id_prefix=prefix)
    pins = [p.event for p in generator.pins(120)]
    edits = [generator.updated(p).event for p in generator.pins(40)]
    vectors = encoder.encode([text_of(e) for e in pins + edits])
    router = train_router(vectors, SHARDS, GROUPS, cfg.shards.metric, seed=0)
    save_router(cfg.router_root(), router)
    owner = router.owner_shards(vectors).tolist()  # of pins, then of edits

    # Re-embedded pins: 40 edits of their own text, and pins given the text of a pin that
    # another shard owns, so that some pins surely change shard.
    movers = [
        dataclasses.replace(pins[i + 1], pin_id=pins[i].pin_id)
        for i in range(60, 99, 3)
        if owner[i] != owner[i + 1]
    ]
    moved_edits = sum(owner[i] != owner[len(pins) + i] for i in range(len(edits)))
    assert len(movers) >= 5 and moved_edits + len(movers) >= 10
    deletes = [generator.delete(pins[i].pin_id) for i in range(100, 115)]
    deletes.append(generator.delete(f"{prefix}-never-written"))
    return RoutedWorkload(pins + edits + movers + deletes, router, movers)


def assert_shards_hold_the_oracle(cfg: PinstreamConfig, workload: RoutedWorkload) -> None:
    """The shards rebuilt from the log: together they hold the oracle fold, each pin on one
    shard, the one owning its newest vector, which a query for that vector reaches."""
    states = [ShardState(cfg.shards) for _ in range(SHARDS)]
    for record in drain(cfg.broker.bootstrap, cfg.topics.embeddings):
        rows = decode_rows(record.value)
        assert set(rows["generation"].to_pylist()) == {cfg.model.generation}
        states[record.partition].apply_rows(rows)
    live_on: dict[str, list[int]] = {}
    titles: dict[str, str] = {}
    for shard, state in enumerate(states):
        for pin_id, info in state.live_pins().items():
            live_on.setdefault(pin_id, []).append(shard)
            titles[pin_id] = info.title
    assert titles == oracle_fold(workload.events)
    assert all(len(shards) == 1 for shards in live_on.values()), "a pin live on two shards"
    for pin_id, [shard] in live_on.items():
        got = states[shard].get(pin_id)
        assert got is not None
        vector = np.asarray(got["vector"], dtype=np.float32)[None, :]
        assert workload.router.owner_shards(vector)[0] == shard
        assert shard in workload.router.shards_for(vector, 1)[0]
    for event in workload.movers:
        assert event.pin_id in live_on and titles[event.pin_id] == event.title


def test_routed_ingest_moves_pins_between_shards_and_matches_the_oracle(
    broker, ray_session, text_encoder: TextEncoder
) -> None:
    cfg = routed_config(broker.bootstrap)
    with pytest.raises(RouterNotFound, match="pinstream router train --generation"):
        IngestJob(cfg)
    workload = routed_workload(cfg, "routed", text_encoder)
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        producer.send_all(workload.events)

    stats = IngestJob(cfg, idle_stop_s=2.0).run()

    assert stats.events == len(workload.events)
    assert_shards_hold_the_oracle(cfg, workload)
