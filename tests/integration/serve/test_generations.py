"""Two warm generations on real Serve: a backfilled generation, then canary, promotion and
rollback by traffic policy under a steady query stream, with no failed query."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from ray import serve

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder
from jobs.backfill import Backfill
from serve.app import build_app
from serve.generation import generation_app_name
from serve.traffic import TrafficPolicy, TrafficStore
from streams.local_broker import LocalBroker
from streams.producer import PinProducer
from streams.synthetic import PinGenerator
from tests.integration.conftest import unique_config
from tests.integration.serve.conftest import logged_pins
from tests.integration.serve.test_query_api import prometheus_lines
from tests.waiting import wait_until

COUNT = 60
NEW = "base-regen"  # the packaged weights again: a generation of its own, with its own log


@dataclass
class Stack:
    cfg: PinstreamConfig
    url: str
    store: TrafficStore


def healthy_with(url: str, pins: int) -> bool:
    try:
        response = requests.get(f"{url}/healthz", timeout=5)
    except requests.RequestException:
        return False
    return response.status_code == 200 and response.json()["pins"] == pins


@pytest.fixture(scope="module")
def stack(broker: LocalBroker, serve_url: str, text_encoder: TextEncoder) -> Iterator[Stack]:
    cfg = (
        unique_config(broker.bootstrap)
        .with_value("serve.traffic_poll_s", 0.2)
        .with_value("serve.recall_sample_rate", 1.0)
        .with_value("serve.fallback_window", 200)
        .with_value("serve.fallback_min_samples", 30)
        .with_value("ingest.batch_latency_budget_ms", 50)
    )
    pins = PinGenerator(seed=11, id_prefix="gen").pins(COUNT)
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        producer.send_all([pin.event for pin in pins])  # what the backfill reads
    # The current generation's log, as its ingest writes it (the ingest job has tests of its
    # own): the pins at version 1, embedded by the same model.
    logged_pins(cfg, pins, text_encoder)
    prefix = f"/{cfg.serve.app_name}"
    serve.run(build_app(cfg), name=cfg.serve.app_name, route_prefix=prefix, blocking=False)
    url = f"{serve_url}{prefix}"
    try:
        wait_until(lambda: healthy_with(url, COUNT), 120, f"{COUNT} pins in the current generation")
        yield Stack(cfg, url, TrafficStore(cfg))
    finally:
        serve.delete(generation_app_name(cfg.serve.app_name, NEW))
        serve.delete(cfg.serve.app_name)


def test_backfill_builds_a_new_generation_beside_the_serving_one(stack: Stack) -> None:
    backfill = Backfill(stack.cfg, model="base", generation=NEW, idle_stop_s=2.0)
    stats = backfill.run()
    assert stats.embedded == COUNT, "every pin, from the earliest offset"
    assert backfill.generation_cfg.topics.embeddings != stack.cfg.topics.embeddings

    stack.store.set(TrafficPolicy(stack.cfg.model.generation, shadow=NEW))

    def pinned_pins() -> int:
        body = {"text": "walnut coffee table", "k": COUNT, "generation": NEW}
        response = requests.post(f"{stack.url}/v1/search", json=body, timeout=30)
        return len(response.json()["results"]) if response.status_code == 200 else -1

    wait_until(lambda: pinned_pins() == COUNT, 120, f"{COUNT} pins searchable in {NEW}")
    health = requests.get(f"{stack.url}/healthz", timeout=10).json()
    assert health["generations"][NEW] == {"pins": COUNT, "missing_shards": []}


def test_canary_promotion_and_rollback_under_a_steady_query_stream(stack: Stack) -> None:
    old = stack.cfg.model.generation
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def query_stream() -> None:
        while not stop.is_set():
            body = {"text": "farmhouse dining chair", "k": 5}
            try:
                response = requests.post(f"{stack.url}/v1/search", json=body, timeout=30)
                generation = response.json().get("generation")
                answers.append((response.status_code, generation))
            except requests.RequestException as exc:
                answers.append((0, repr(exc)))

    def next_answers(n: int) -> Counter[str | None]:
        start = len(answers)
        wait_until(lambda: len(answers) >= start + n, 60, f"{n} more answers")
        return Counter(generation for _, generation in answers[start : start + n])

    stream = threading.Thread(target=query_stream, daemon=True)
    stream.start()
    try:
        stack.store.set(TrafficPolicy(old, canary=NEW, canary_percent=50.0))
        wait_until(lambda: set(next_answers(10)) == {old, NEW}, 60, "both generations answer")
        stack.store.set(TrafficPolicy(NEW, fallback=old, fallback_below=-1.0))
        wait_until(lambda: set(next_answers(10)) == {NEW}, 60, f"{NEW} answers every query")
        stack.store.rollback()
        stack.store.rollback()
        wait_until(lambda: set(next_answers(10)) == {old}, 60, f"back to {old}")
    finally:
        stop.set()
        stream.join(30)
    failed = [answer for answer in answers if answer[0] != 200]
    assert failed == [], f"{len(failed)} of {len(answers)} queries failed"
    stats = requests.get(f"{stack.url}/v1/generations", timeout=10).json()["stats"]
    assert stats[NEW]["answered"]["canary"] > 0 and stats[NEW]["answered"]["primary"] > 0
    assert stats[old]["online_recall"] == 1.0, "the exact growing segments: recall 1"


STYLES = ["walnut", "rattan", "velvet", "marble", "linen", "oak", "brass", "ceramic"]
THINGS = ["coffee table", "armchair", "pendant lamp", "rug", "bookshelf", "vase", "bed frame"]


def test_a_fallback_share_sets_the_bar_so_the_fallback_takes_that_share(stack: Stack) -> None:
    old = stack.cfg.model.generation
    stack.store.set(TrafficPolicy(old, fallback=NEW, fallback_share=0.25))
    wait_until(
        lambda: (
            requests.get(f"{stack.url}/v1/generations", timeout=10)
            .json()["traffic"]
            .get("fallback_share")
            == 0.25
        ),
        30,
        "the share policy adopted",
    )
    texts = [f"{style} {thing}" for style in STYLES for thing in THINGS]  # 56 distinct queries
    answers = []
    for text in texts * 3:
        response = requests.post(f"{stack.url}/v1/search", json={"text": text, "k": 5}, timeout=30)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert {a["generation"] for a in answers} == {old, NEW}
    assert all((a["generation"] == NEW) == (a["fallback_from"] == old) for a in answers)
    calibrated = answers[-len(texts) :]  # the last round: the bar set by the rounds before
    taken = sum(a["fallback_from"] == old for a in calibrated) / len(calibrated)
    assert 0.1 <= taken <= 0.45, f"the fallback took {taken:.2f} of the queries, not ~0.25"
    fallback = requests.get(f"{stack.url}/v1/generations", timeout=10).json()["fallback"]
    assert fallback["calibrated"] and fallback["share_wanted"] == 0.25
    assert 0.1 <= fallback["share_taken"] <= 0.45, fallback

    def share_exported() -> bool:
        return any(
            line.startswith("ray_pinstream_fallback_share{") and f'fallback="{NEW}"' in line
            for line in prometheus_lines()
        )

    wait_until(share_exported, 60, "the realised fallback share in Prometheus")
