"""Search by image on real Serve: a clip-kind generation with the tiny random CLIP.

The pins' vectors are their rendered images' (the oracle is the same ClipEncoder in this
process), written to the embeddings log before the app starts. A pin's own image, sent or
fetched from a file:// URL, must find that pin first: decoded by the ingress to the same 32x32
pixels, it embeds to the same vector in the query encoder's image tower.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
from ray import serve

from conf.config import PinstreamConfig
from encoder.clip_encoder import ClipEncoder
from encoder.registry import ModelRegistry
from encoder.tiny_clip import TINY_DIM, TINY_IMAGE_SIZE, build_tiny_clip
from jobs.backfill import Backfill
from serve.app import build_app
from serve.generation import generation_app_name
from serve.proto import pinstream_pb2 as pb
from serve.proto.pinstream_pb2_grpc import PinSearchStub
from serve.traffic import TrafficPolicy, TrafficStore
from streams.embeddings_log import EmbeddingsLogWriter, upsert_rows
from streams.local_broker import LocalBroker
from streams.producer import PinProducer
from streams.synthetic import PinGenerator, SyntheticPin
from streams.synthetic_images import render_pin_image, write_pin_images
from tests.integration.conftest import unique_config
from tests.integration.serve.conftest import deployed
from tests.integration.serve.test_grpc_api import healthy
from tests.waiting import wait_until

COUNT = 40
REFUSED_URL = "https://elsewhere.example.org/pin.png"


@dataclass
class ImageApi:
    url: str
    cfg: PinstreamConfig
    pins: list[SyntheticPin]  # with file:// image URLs
    vectors: np.ndarray

    def search(self, body: dict) -> requests.Response:
        return requests.post(f"{self.url}/v1/search", json=body, timeout=60)


def logged_image_pins(
    cfg: PinstreamConfig, pins: list[SyntheticPin], encoder: ClipEncoder
) -> np.ndarray:
    """Write `pins` (version 1) with their images' vectors to cfg's embeddings log."""
    pixels = np.stack([np.asarray(render_pin_image(pin, size=TINY_IMAGE_SIZE)) for pin in pins])
    vectors = encoder.encode_images(pixels)
    with EmbeddingsLogWriter(cfg.broker.bootstrap, cfg.topics.embeddings, cfg.shards.count) as w:
        w.write(upsert_rows([pin.event for pin in pins], vectors, 1, cfg.model.generation))
        w.flush()
    return vectors


@pytest.fixture(scope="module")
def api(
    broker: LocalBroker, serve_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ImageApi]:
    root = tmp_path_factory.mktemp("image-search")
    folder = build_tiny_clip(root / "tiny-clip")
    cfg = unique_config(broker.bootstrap).with_values(
        {
            "model.name": str(folder),  # before the kind: a clip needs a folder
            "model.kind": "clip",
            "model.generation": "tiny-clip-test",
            "shards.dim": TINY_DIM,
            "images.enabled": True,
            "images.image_size": TINY_IMAGE_SIZE,
            "images.schemes": ["file", "https"],
            "images.allowed_hosts": ["images.example.com"],
        }
    )
    pins = PinGenerator(seed=17, id_prefix="img").pins(COUNT)
    pins = write_pin_images(pins, str(root / "images"), size=TINY_IMAGE_SIZE)
    vectors = logged_image_pins(cfg, pins, ClipEncoder(cfg.model))
    with deployed(cfg, build_app(cfg), serve_url) as url:
        yield ImageApi(url, cfg, pins, vectors)


def image_file(pin: SyntheticPin) -> bytes:
    return Path(str(pin.event.image_url).removeprefix("file://")).read_bytes()


def top(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["pin_id"] for hit in response.json()["results"]]


def test_a_pins_own_image_finds_it_first_sent_or_by_url(api: ImageApi) -> None:
    for pin in (api.pins[0], api.pins[COUNT // 2], api.pins[-1]):
        sent = base64.b64encode(image_file(pin)).decode()
        by_bytes = api.search({"image_base64": sent, "k": 5})
        assert top(by_bytes)[0] == pin.event.pin_id
        assert by_bytes.json()["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert by_bytes.json()["generation"] == "tiny-clip-test"
        by_url = api.search({"image_url": pin.event.image_url, "k": 5})
        assert top(by_url) == top(by_bytes)


def test_an_image_answer_equals_exact_search_over_the_pins(api: ImageApi) -> None:
    pin = api.pins[3]
    query = api.vectors[3]
    expected = [api.pins[i].event.pin_id for i in np.argsort(-(api.vectors @ query))[:10]]
    assert top(api.search({"image_url": pin.event.image_url, "k": 10})) == expected


def test_a_text_search_answers_from_the_text_tower(api: ImageApi) -> None:
    found = top(api.search({"text": api.pins[1].event.title, "k": 7}))
    assert len(found) == 7 and set(found) <= {pin.event.pin_id for pin in api.pins}


def test_a_refused_image_is_a_422_with_the_reason(api: ImageApi) -> None:
    response = api.search({"image_url": REFUSED_URL})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "image_url refused: host 'elsewhere.example.org' is not in images.allowed_hosts"
    )
    undecodable = base64.b64encode(b"no image here").decode()
    response = api.search({"image_base64": undecodable})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("image_base64 refused: not a decodable image")


def test_grpc_searches_by_image_and_refuses_as_http_does(api: ImageApi, grpc_target: str) -> None:
    app = api.cfg.serve.app_name
    metadata = [("application", app)]
    pin = api.pins[5]
    sent = base64.b64encode(image_file(pin)).decode()
    with grpc.insecure_channel(grpc_target) as channel:
        stub = PinSearchStub(channel)
        wait_until(lambda: healthy(stub, app), 60, "gRPC Healthz answering")
        reply = stub.Search(pb.SearchRequest(image_base64=sent, k=5), metadata=metadata, timeout=60)
        assert [hit.pin_id for hit in reply.results] == top(api.search({"image_base64": sent}))[:5]
        assert reply.results[0].pin_id == pin.event.pin_id
        with pytest.raises(grpc.RpcError) as refused:
            stub.Search(pb.SearchRequest(image_url=REFUSED_URL), metadata=metadata, timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == api.search({"image_url": REFUSED_URL}).json()["detail"]


def test_a_backfill_builds_a_visual_generation_from_the_pins_pictures(api: ImageApi) -> None:
    """The pins (with their file:// pictures) on `pins`, and a second CLIP in the registry: the
    backfill re-fetches every picture and embeds it with that model, into a generation of
    its own that the policy's shadow makes reachable; there a pin's picture finds it first."""
    root = Path(str(api.pins[0].event.image_url).removeprefix("file://")).parent.parent
    registry = ModelRegistry(str(root / "models"))
    second = build_tiny_clip(root / "tiny-clip-2", seed=1)
    registry.publish(
        second, base_model="tiny", data_hash="-", metrics={}, training={}, version="v2"
    )
    cfg = api.cfg.with_value("model.registry", registry.root)
    with PinProducer(cfg.broker.bootstrap, cfg.topics.pins) as producer:
        producer.send_all(pin.event for pin in api.pins)
    backfill = Backfill(cfg, model="v2", generation="tiny-clip-v2", idle_stop_s=2.0)
    try:
        stats = backfill.run()
        assert (stats.embedded, stats.dead_letters) == (COUNT, 0)
        TrafficStore(cfg).set(TrafficPolicy(cfg.model.generation, shadow="tiny-clip-v2"))
        pin = api.pins[5]
        body = {"image_url": pin.event.image_url, "k": 3, "generation": "tiny-clip-v2"}

        def found_in_the_new_generation() -> bool:
            response = api.search(body)
            return response.status_code == 200 and top(response)[0] == pin.event.pin_id

        wait_until(found_in_the_new_generation, 120, "the pin found by its picture in v2")
        answer = api.search(body).json()
        assert answer["generation"] == "tiny-clip-v2"
        assert answer["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
        # Another model, another space: v2's vector of the picture is not v1's.
        v2 = ClipEncoder(dataclasses.replace(cfg.model, name="v2")).encode_images(
            np.asarray(render_pin_image(pin, size=TINY_IMAGE_SIZE))[None]
        )
        assert float(v2[0] @ api.vectors[5]) < 0.99
    finally:
        TrafficStore(cfg).set(TrafficPolicy(cfg.model.generation))
        serve.delete(generation_app_name(cfg.serve.app_name, "tiny-clip-v2"))
