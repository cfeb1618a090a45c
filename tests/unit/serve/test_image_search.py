"""Search by image over HTTP and gRPC, over in-process fakes (no Ray, no broker, no network).

The images are real PNG files decoded by the real decoder, and `image_url`s go through the real
fetcher; only the image tower is a fake: an image whose first pixel is red `i` embeds as pin i's
vector. tests/integration/serve/test_image_search.py runs a real tiny CLIP on real Serve.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fastapi.testclient import TestClient
from google.protobuf.json_format import MessageToDict
from PIL import Image

from serve.ingress import Ingress
from serve.proto import pinstream_pb2 as pb
from serve.traffic import TrafficPolicy, TrafficStore
from streams.image_fetch import ImageFetcher
from tests.unit.serve.test_grpc_api import call
from tests.unit.serve.test_http_api import (
    BOARDS,
    GENERATION,
    SHARDS,
    VECTORS,
    FakeEncoder,
    FakeHandle,
    FakeShard,
    client_of,
    exact,
    ids,
    make_ingress,
)

SIZE = 32
BUGGY_RED = 255  # the fake image tower fails on an image of this red, as a bug would
IMAGES = {
    "images.enabled": True,
    "images.image_size": SIZE,
    "images.schemes": ["file", "https"],
    "images.allowed_hosts": ["images.example.com"],
}


def png(red: int, side: int = SIZE) -> bytes:
    """A PNG of one colour: the fake tower reads its red as the pin it shows."""
    encoded = io.BytesIO()
    Image.new("RGB", (side, side), (red, 40, 90)).save(encoded, "PNG")
    return encoded.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeImageEncoder(FakeEncoder):
    """A dual encoder: the texts of FakeEncoder, and an image tower over decoded pixels."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def encode_image(self, pixels: np.ndarray) -> np.ndarray | None:
        self.shapes.append(pixels.shape)
        red = int(pixels[0, 0, 0])
        if red == BUGGY_RED:
            raise RuntimeError("secret image tower internals")
        return VECTORS[red]


class CountingFetcher(ImageFetcher):
    """The real fetcher, counting its fetches and whether each ran off the event loop."""

    def __init__(self, fetcher: ImageFetcher) -> None:
        super().__init__(fetcher.images, fetcher.resolve)
        self.calls: list[bool] = []  # per fetch: True when no event loop runs in its thread

    def fetch(self, url: str) -> bytes:
        try:
            asyncio.get_running_loop()
            self.calls.append(False)
        except RuntimeError:
            self.calls.append(True)
        return super().fetch(url)


def image_ingress(values: dict[str, Any] | None = None, encoder: object = None) -> Ingress:
    ingress = make_ingress(
        values={**IMAGES, **(values or {})},
        encoder=FakeImageEncoder() if encoder is None else encoder,
    )
    ingress.image_fetcher = CountingFetcher(ingress.image_fetcher)
    return ingress


@pytest.fixture(scope="module")
def ingress() -> Ingress:
    return image_ingress()


@pytest.fixture(scope="module")
def client(ingress: Ingress) -> Iterator[TestClient]:
    with client_of(ingress) as running:
        yield running


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """file:// URLs of the images of pins 0..9."""
    folder = tmp_path_factory.mktemp("images")
    urls = {}
    for red in range(10):
        path = folder / f"pin-{red}.png"
        path.write_bytes(png(red))
        urls[red] = path.as_uri()
    return urls


def refusal(response: Any) -> str:
    assert response.status_code == 422, response.text
    detail: str = response.json()["detail"]
    assert isinstance(detail, str), detail
    return detail


def test_a_sent_image_finds_its_pin_first_as_exact_search_does(
    ingress: Ingress, client: TestClient
) -> None:
    body = {"image_base64": b64(png(7)), "k": 6, "boards": ["Den", "Porch"]}
    found = ids(client.post("/v1/search", json=body))
    assert found == exact(VECTORS[7], 6, lambda pin: BOARDS[pin] in {"Den", "Porch"})
    assert found[0] == "pin-007"
    assert ingress.roster.clients[GENERATION].encoder.target.shapes[-1] == (SIZE, SIZE, 3)


def test_an_image_url_is_fetched_off_the_event_loop_and_finds_its_pin(
    ingress: Ingress, client: TestClient, image_files: dict[int, str]
) -> None:
    fetcher = ingress.image_fetcher
    assert isinstance(fetcher, CountingFetcher)
    before = len(fetcher.calls)
    found = ids(client.post("/v1/search", json={"image_url": image_files[3], "k": 5}))
    assert found == exact(VECTORS[3], 5, lambda pin: True)
    assert fetcher.calls[before:] == [True], "one fetch, in a worker thread"


def test_a_larger_image_is_decoded_to_the_configured_size(client: TestClient) -> None:
    found = ids(client.post("/v1/search", json={"image_base64": b64(png(5, side=80)), "k": 1}))
    assert found == ["pin-005"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"image_url": "file:///x.png", "text": "like pin-001"}, "not 'text' and 'image_url'"),
        (
            {"image_url": "file:///x.png", "image_base64": "aGk="},
            "not 'image_url' and 'image_base64'",
        ),
        ({"vector": [0.0] * 16, "image_base64": "aGk="}, "not 'vector' and 'image_base64'"),
        ({"image_base64": "not base64!"}, "image_base64"),
        ({"image_base64": "aGk"}, "image_base64"),
        ({"image_base64": ""}, "image_base64"),
        ({"image_url": ""}, "image_url"),
        ({"image_url": "file:///" + "x" * 2048}, "image_url"),
        ({"image_url": 7}, "image_url"),
    ],
)
def test_malformed_image_queries_get_422_naming_the_field(
    client: TestClient, body: dict[str, Any], needle: str
) -> None:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 422
    assert needle in response.text


def test_refused_images_get_422_with_the_fetcher_or_decoder_reason(
    client: TestClient, tmp_path: Path
) -> None:
    refused = {
        "https://elsewhere.example.org/a.png": (
            "image_url refused: host 'elsewhere.example.org' is not in images.allowed_hosts"
        ),
        "http://images.example.com/a.png": "image_url refused: scheme 'http' is not allowed",
        "file://host/etc/passwd": "image_url refused: a file:// image_url names a local path",
        (tmp_path / "absent.png").as_uri(): "image_url refused: no image at",
    }
    for url, reason in refused.items():
        assert refusal(client.post("/v1/search", json={"image_url": url})).startswith(reason), url
    undecodable = {"image_base64": b64(b"these bytes are no image at all")}
    assert refusal(client.post("/v1/search", json=undecodable)).startswith(
        "image_base64 refused: not a decodable image"
    )
    truncated = {"image_base64": b64(png(1)[:-20])}
    assert "image_base64 refused: not a decodable image" in refusal(
        client.post("/v1/search", json=truncated)
    )


def test_images_over_the_byte_or_pixel_caps_are_refused(image_files: dict[int, str]) -> None:
    size = len(png(2))
    with client_of(image_ingress({"images.max_bytes": size - 1})) as client:
        for body in ({"image_base64": b64(png(2))}, {"image_url": image_files[2]}):
            assert "over images.max_bytes" in refusal(client.post("/v1/search", json=body))
        assert refusal(client.post("/v1/search", json={"image_base64": b64(png(2))})) == (
            f"image_base64 refused: image of {size} bytes is over images.max_bytes ({size - 1})"
        )
    with client_of(image_ingress({"images.max_pixels": SIZE * SIZE - 1})) as client:
        assert refusal(client.post("/v1/search", json={"image_base64": b64(png(2))})) == (
            f"image_base64 refused: image of {SIZE}x{SIZE} pixels is over images.max_pixels "
            f"({SIZE * SIZE - 1})"
        )


def test_a_text_model_or_a_deployment_without_images_refuses_a_search_by_image(
    image_files: dict[int, str],
) -> None:
    body = {"image_base64": b64(png(4))}
    with client_of(image_ingress(encoder=FakeEncoder())) as client:
        assert refusal(client.post("/v1/search", json=body)) == (
            f"generation {GENERATION}'s model embeds no images"
        )
    ingress = image_ingress({"images.enabled": False})
    with client_of(ingress) as client:
        for body in ({"image_base64": b64(png(4))}, {"image_url": image_files[4]}):
            assert refusal(client.post("/v1/search", json=body)) == (
                "search by image needs images.enabled in this deployment"
            )
    assert isinstance(ingress.image_fetcher, CountingFetcher)
    assert ingress.image_fetcher.calls == [], "nothing is read before the refusal"


def test_a_bug_in_the_image_tower_is_a_500_not_a_4xx(client: TestClient) -> None:
    body = {"image_base64": b64(png(BUGGY_RED))}
    response = client.post("/v1/search", json=body, headers={"x-request-id": "r-img"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "request_id": "r-img"}
    assert "secret" not in response.text


def test_a_batch_takes_images_and_a_refused_one_gets_its_own_error(
    client: TestClient, image_files: dict[int, str]
) -> None:
    queries = [
        {"image_url": image_files[8], "k": 1},
        {"image_url": "https://elsewhere.example.org/a.png"},
        {"image_base64": b64(png(9)), "k": 1},
        {"text": "like pin-002", "k": 1},
    ]
    response = client.post("/v1/search/batch", json={"queries": queries})
    assert response.status_code == 200, response.text
    items = response.json()["results"]
    assert [item["response"]["results"][0]["pin_id"] for i, item in enumerate(items) if i != 1] == [
        "pin-008",
        "pin-009",
        "pin-002",
    ]
    assert items[1]["error"] == {
        "status": 422,
        "detail": "image_url refused: host 'elsewhere.example.org' is not in images.allowed_hosts",
    }


OTHER = "clip-ft-0002"


def with_fallback(fallback_encoder: object) -> Ingress:
    """An ingress whose policy always falls back (no score reaches 1.5) to generation OTHER."""
    ingress = image_ingress({"serve.traffic_poll_s": 3600.0})
    other = (FakeHandle(fallback_encoder), [FakeHandle(FakeShard(s)) for s in range(SHARDS)])
    roster = ingress.roster
    roster._remote_client = lambda generation: roster._client(generation, *other)  # type: ignore[method-assign,arg-type]
    TrafficStore(ingress.cfg).set(TrafficPolicy(GENERATION, fallback=OTHER, fallback_below=1.5))
    ingress.roster.refresh_policy()
    return ingress


def test_the_fallback_reuses_the_image_fetched_once_per_query(image_files: dict[int, str]) -> None:
    ingress = with_fallback(FakeImageEncoder())
    with client_of(ingress) as client:
        response = client.post("/v1/search", json={"image_url": image_files[6], "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["generation"], body["fallback_from"]) == (OTHER, GENERATION)
    assert body["results"][0]["pin_id"] == "pin-006"
    assert isinstance(ingress.image_fetcher, CountingFetcher)
    assert ingress.image_fetcher.calls == [True], "fetched and decoded once for both"


def test_a_fallback_that_embeds_no_images_leaves_the_first_answer(
    image_files: dict[int, str],
) -> None:
    with client_of(with_fallback(FakeEncoder())) as client:
        response = client.post("/v1/search", json={"image_url": image_files[6], "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["generation"], body["fallback_from"]) == (GENERATION, None)
    assert body["results"][0]["pin_id"] == "pin-006"


def test_grpc_searches_by_image_as_http_does(ingress: Ingress, client: TestClient) -> None:
    reply, context = call(ingress, "Search", pb.SearchRequest(image_base64=b64(png(1)), k=4))
    assert context.code is None, context.details
    expected = ids(client.post("/v1/search", json={"image_base64": b64(png(1)), "k": 4}))
    assert [hit.pin_id for hit in reply.results] == expected
    assert expected[0] == "pin-001"


@pytest.mark.parametrize(
    "request_",
    [
        pb.SearchRequest(image_url="https://elsewhere.example.org/a.png"),
        pb.SearchRequest(image_base64="not base64!"),
        pb.SearchRequest(image_base64=b64(b"no image"), text="like pin-001"),
        pb.SearchRequest(image_base64=b64(b"no image")),
    ],
)
def test_grpc_refuses_an_image_as_http_does(
    ingress: Ingress, client: TestClient, request_: pb.SearchRequest
) -> None:
    _, context = call(ingress, "Search", request_)
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    http = client.post("/v1/search", json=MessageToDict(request_, preserving_proto_field_name=True))
    assert http.status_code == 422
    if isinstance(http.json()["detail"], str):  # the ingress's own refusals: the same detail
        assert context.details == http.json()["detail"]
    else:  # the schema's: the same fields named
        for error in http.json()["detail"]:
            assert error["msg"] in context.details
