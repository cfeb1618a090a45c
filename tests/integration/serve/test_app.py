"""The Serve application over HTTP, fed through a real embeddings log."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
import requests
from ray import serve

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder
from serve.app import build_app
from streams.embeddings_log import EmbeddingsLogWriter, delete_rows, upsert_rows
from streams.local_broker import LocalBroker
from streams.pin_text import pin_text
from streams.synthetic import PinGenerator, SyntheticPin
from tests.integration.conftest import unique_config
from tests.waiting import wait_until

COUNT = 240


def log_rows(
    cfg: PinstreamConfig, pins: list[SyntheticPin], vectors: np.ndarray, version: int
) -> pa.Table:
    return upsert_rows([p.event for p in pins], vectors, version, cfg.model.generation)


class App:
    def __init__(
        self, cfg: PinstreamConfig, url: str, encoder: TextEncoder, pins: list[SyntheticPin]
    ):
        self.cfg, self.url, self.encoder, self.pins = cfg, url, encoder, pins
        self.writer = EmbeddingsLogWriter(
            cfg.broker.bootstrap, cfg.topics.embeddings, cfg.shards.count
        )

    def write(self, rows: pa.Table) -> None:
        self.writer.write(rows)
        self.writer.flush()

    def embed(self, pins: list[SyntheticPin]) -> np.ndarray:
        return self.encoder.encode(
            [
                pin_text(p.event.title, p.event.description, p.event.board, p.event.tags)
                for p in pins
            ]
        )

    def healthz(self) -> dict:
        return requests.get(f"{self.url}/healthz", timeout=10).json()


@pytest.fixture(scope="module")
def app(broker: LocalBroker, serve_url: str, text_encoder: TextEncoder) -> Iterator[App]:
    cfg = unique_config(broker.bootstrap)
    prefix = f"/{cfg.serve.app_name}"
    serve.run(build_app(cfg), name=cfg.serve.app_name, route_prefix=prefix, blocking=False)
    url = f"{serve_url}{prefix}"
    app = App(
        cfg,
        url,
        text_encoder,
        PinGenerator(seed=3, id_prefix="srv").pins(COUNT),
    )
    app.write(log_rows(cfg, app.pins, app.embed(app.pins), version=1))
    wait_until(lambda: _ok(url) and app.healthz()["pins"] == COUNT, what=f"{COUNT} pins indexed")
    try:
        yield app
    finally:
        app.writer.close()
        serve.delete(cfg.serve.app_name)


def _ok(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def search(app: App, **body) -> requests.Response:
    return requests.post(f"{app.url}/v1/search", json=body, timeout=30)


def test_healthz_reports_every_shard(app: App) -> None:
    body = app.healthz()
    assert body["status"] == "ok"
    assert [s["shard"] for s in body["shards"]] == list(range(app.cfg.shards.count))
    assert sum(s["pins"] for s in body["shards"]) == COUNT


def test_text_search_shape_and_style(app: App) -> None:
    response = search(app, text="farmhouse dining chair", k=10)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"results", "generation", "partial", "took_ms"}
    assert body["generation"] == app.cfg.model.generation and body["partial"] is False
    assert len(body["results"]) == 10
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    style_of = {p.event.pin_id: p.style for p in app.pins}
    farmhouse = sum(style_of[r["pin_id"]] == "farmhouse" for r in body["results"])
    assert farmhouse >= 6, body["results"]


def test_vector_search_finds_the_pin_itself(app: App) -> None:
    pin = app.pins[7]
    vector = app.embed([pin])[0].tolist()
    body = search(app, vector=vector, k=3).json()
    assert body["results"][0]["pin_id"] == pin.event.pin_id
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert body["results"][0]["title"] == pin.event.title


def test_get_pin_and_related(app: App) -> None:
    pin = app.pins[0]
    got = requests.get(f"{app.url}/v1/pins/{pin.event.pin_id}", timeout=10).json()
    assert got["title"] == pin.event.title and got["board"] == pin.event.board
    related = requests.get(
        f"{app.url}/v1/pins/{pin.event.pin_id}/related", params={"k": 5}, timeout=10
    ).json()
    ids = [r["pin_id"] for r in related["results"]]
    assert len(ids) == 5 and pin.event.pin_id not in ids
    assert requests.get(f"{app.url}/v1/pins/no-such-pin", timeout=10).status_code == 404
    assert requests.get(f"{app.url}/v1/pins/no-such-pin/related", timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"text": "sofa", "k": 0}, "greater than or equal to 1"),
        ({"text": "sofa", "k": 1001}, "less than or equal to 1000"),
        ({"k": 5}, "non-empty 'text' or a 'vector'"),
        ({"text": "   "}, "non-empty 'text' or a 'vector'"),
        ({"text": "sofa", "vector": [0.0] * 384}, "not 'text' and 'vector'"),
        ({"vector": [0.1, 0.2, 0.3]}, "vector has 3 values; this index has dim 384"),
    ],
)
def test_bad_search_requests_get_422_with_the_reason(app: App, body: dict, needle: str) -> None:
    response = search(app, **body)
    assert response.status_code == 422
    assert needle in response.text
    assert "Traceback" not in response.text


def test_bad_pin_requests_get_422(app: App) -> None:
    pin_id = app.pins[0].event.pin_id
    assert requests.get(f"{app.url}/v1/pins/{'x' * 65}", timeout=10).status_code == 422
    assert (
        requests.get(f"{app.url}/v1/pins/{pin_id}/related", params={"k": 0}, timeout=10).status_code
        == 422
    )


def test_updates_replace_and_deletes_hold(app: App) -> None:
    generator = PinGenerator(seed=3, id_prefix="srv")
    updated = [generator.updated(p) for p in app.pins[10:15]]
    app.write(log_rows(app.cfg, updated, app.embed(updated), version=2))
    deleted = [p.event.pin_id for p in app.pins[15:20]]
    app.write(delete_rows(deleted, 2, app.cfg.model.generation, app.cfg.shards.dim))
    # A stale replay of the originals (version 1) must change nothing.
    app.write(log_rows(app.cfg, app.pins[10:20], app.embed(app.pins[10:20]), version=1))

    wait_until(lambda: app.healthz()["pins"] == COUNT - 5, what="deletes applied")
    for pin in updated:
        url = f"{app.url}/v1/pins/{pin.event.pin_id}"
        wait_until(
            lambda url=url, pin=pin: (
                requests.get(url, timeout=10).json().get("title") == pin.event.title
            )
        )
    for pin_id in deleted:
        assert requests.get(f"{app.url}/v1/pins/{pin_id}", timeout=10).status_code == 404
    old = app.pins[15]
    body = search(app, vector=app.embed([old])[0].tolist(), k=50).json()
    assert not {r["pin_id"] for r in body["results"]} & set(deleted)
    old_titles = {p.event.title for p in app.pins[10:15]}
    assert not {
        r["title"] for r in search(app, text=app.pins[10].event.title, k=50).json()["results"]
    } & (old_titles - {p.event.title for p in updated})
