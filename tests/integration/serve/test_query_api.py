"""Filters, generations, API keys and limits over HTTP, on a real app with 60 pins.

The pins are written to the embeddings log before the app starts: a replica takes
traffic only once it has caught up, so the first answer already sees every pin.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest
import ray
import requests
from PIL import Image

from conf.config import PinstreamConfig
from encoder.text_encoder import TextEncoder
from serve.app import build_app
from streams.local_broker import LocalBroker
from streams.synthetic import PinGenerator, SyntheticPin
from tests.integration.conftest import unique_config
from tests.integration.serve.conftest import deployed, logged_pins
from tests.waiting import wait_until

COUNT = 60
KEY = "test-key-1"
BODY_LIMIT = 32 * 1024


@dataclass
class Api:
    url: str
    cfg: PinstreamConfig
    pins: list[SyntheticPin]
    vectors: np.ndarray
    encoder: TextEncoder

    def post(self, body: dict, **headers: str) -> requests.Response:
        return requests.post(
            f"{self.url}/v1/search", json=body, headers=headers or {"x-api-key": KEY}, timeout=30
        )

    def get(self, path: str, params: dict | None = None, **headers: str) -> requests.Response:
        return requests.get(
            f"{self.url}{path}", params=params, headers=headers or {"x-api-key": KEY}, timeout=30
        )

    def exact(self, query: np.ndarray, k: int, passes) -> list[str]:
        """The oracle: exact inner-product search over the pins that pass."""
        keep = [i for i, p in enumerate(self.pins) if passes(p)]
        order = np.argsort(-(self.vectors[keep] @ query), kind="stable")[:k]
        return [self.pins[keep[j]].event.pin_id for j in order]


@pytest.fixture(scope="module")
def api(broker: LocalBroker, serve_url: str, text_encoder: TextEncoder) -> Iterator[Api]:
    cfg = unique_config(broker.bootstrap)
    cfg = cfg.with_value("serve.api_keys", [KEY]).with_value("serve.max_body_bytes", BODY_LIMIT)
    cfg = cfg.with_value("images.enabled", True)  # a search by image reaches the text model
    # No online recall checks: each is an exact search sent to the shards after its query is
    # answered, at random, which would change the shards' batch counts these tests read.
    cfg = cfg.with_value("serve.recall_sample_rate", 0.0)
    pins = PinGenerator(seed=11, id_prefix="qa").pins(COUNT)
    vectors = logged_pins(cfg, pins, text_encoder)
    with deployed(cfg, build_app(cfg), serve_url) as url:
        yield Api(url, cfg, pins, vectors, text_encoder)


def ids(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["pin_id"] for hit in response.json()["results"]]


def test_replicas_serve_only_once_caught_up_with_the_log(api: Api) -> None:
    health = requests.get(f"{api.url}/healthz", timeout=10)  # no key needed
    assert health.status_code == 200
    assert health.json()["pins"] == COUNT


def test_board_and_exclusion_filters_equal_exact_search(api: Api) -> None:
    board, _ = Counter(p.event.board for p in api.pins).most_common(1)[0]
    on_board = [p for p in api.pins if p.event.board == board]
    assert len(on_board) >= 3, "the seed should put several pins on one board"
    excluded = [on_board[0].event.pin_id]
    query = api.vectors[5]
    body = {"vector": query.tolist(), "k": len(on_board), "boards": [board]}
    found = ids(api.post(body | {"exclude_pin_ids": excluded}))
    assert found == api.exact(
        query, len(on_board), lambda p: p.event.board == board and p.event.pin_id not in excluded
    )
    assert len(found) == len(on_board) - 1  # every other pin of the board, however far


def test_text_search_with_filters(api: Api) -> None:
    boards = sorted({p.event.board for p in api.pins})[:2]
    query = api.pins[3].event.title
    found = ids(api.post({"text": query, "k": 5, "boards": boards}))
    expected = api.exact(api.encoder.encode([query])[0], 5, lambda p: p.event.board in boards)
    assert found == expected


def test_related_takes_filters_in_the_query_string(api: Api) -> None:
    pin = api.pins[2]
    others = [p.event.board for p in api.pins if p.event.board != pin.event.board][:2]
    params = {
        "k": 4,
        "boards": [pin.event.board, *others],
        "exclude_pin_ids": [api.pins[9].event.pin_id],
    }
    found = ids(api.get(f"/v1/pins/{pin.event.pin_id}/related", params))

    def passes(p: SyntheticPin) -> bool:
        return p.event.board in params["boards"] and p.event.pin_id not in {
            pin.event.pin_id,
            api.pins[9].event.pin_id,
        }

    assert found == api.exact(api.vectors[2], 4, passes)


def test_generation_is_checked(api: Api) -> None:
    served = api.cfg.model.generation
    assert api.post({"text": "sofa", "k": 1, "generation": served}).status_code == 200
    response = api.post({"text": "sofa", "generation": "minilm-l6-v2-ft-7"})
    assert response.status_code == 409
    assert "warm generations: " in response.json()["detail"]
    assert api.post({"text": "sofa", "generation": "../etc"}).status_code == 422


def test_a_text_model_refuses_a_search_by_image(api: Api) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 120, 40)).save(picture, "PNG")
    response = api.post({"image_base64": base64.b64encode(picture.getvalue()).decode()})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"generation {api.cfg.model.generation}'s model embeds no images"
    )


def test_api_keys(api: Api) -> None:
    body = {"text": "sofa", "k": 1}
    no_key = requests.post(f"{api.url}/v1/search", json=body, timeout=30)
    assert no_key.status_code == 401 and no_key.headers["www-authenticate"] == "Bearer"
    assert api.post(body, authorization="Bearer wrong").status_code == 403
    assert api.post(body, **{"x-api-key": "wrong"}).status_code == 403
    assert api.post(body, authorization=f"Bearer {KEY}").status_code == 200
    assert api.get(f"/v1/pins/{api.pins[0].event.pin_id}", **{"x-api-key": KEY}).status_code == 200
    assert requests.get(f"{api.url}/v1/pins/x", timeout=10).status_code == 401
    for open_path in ("/healthz", "/openapi.json", "/docs"):
        assert requests.get(f"{api.url}{open_path}", timeout=10).status_code == 200, open_path


def test_bodies_over_the_limit_get_413(api: Api) -> None:
    too_many = {"text": "sofa", "exclude_pin_ids": [f"p{i:060d}" for i in range(600)]}
    response = api.post(too_many)
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body over {BODY_LIMIT} bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield b'{"text": "sofa", "exclude_pin_ids": ['
        yield b",".join(b'"p%058d"' % i for i in range(600))
        yield b"]}"

    chunked = requests.post(
        f"{api.url}/v1/search",
        data=chunks(),
        headers={"x-api-key": KEY, "content-type": "application/json"},
        timeout=30,
    )
    assert chunked.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        {"text": "sofa", "k": 1001},
        {"vector": [0.1] * 385},
        {"text": "sofa", "exclude_pin_ids": ["p"] * 1001},
        {"text": "sofa", "boards": []},
        {"text": "sofa", "bords": ["Den"]},
    ],
)
def test_limits_and_unknown_fields_get_422(api: Api, body: dict) -> None:
    response = api.post(body)
    assert response.status_code == 422
    assert "Traceback" not in response.text


def test_metrics_reach_prometheus(api: Api) -> None:
    """Ray's metrics agent exports them (prefixed `ray_`) within its report interval."""
    assert api.post({"text": "sofa", "k": 3}).status_code == 200
    node = ray.get_runtime_context().get_node_id()
    port = next(n["MetricsExportPort"] for n in ray.nodes() if n["NodeID"] == node)
    wanted = {
        "ray_pinstream_requests_total": ('endpoint="/v1/search"', 'status="200"'),
        "ray_pinstream_requests_total{": ('status="401"',),
        "ray_pinstream_request_latency_seconds_bucket": ('endpoint="/v1/search"',),
        "ray_pinstream_shard_latency_seconds_bucket": ('method="search"', 'shard="1"'),
        "ray_pinstream_encoder_batch_size_bucket": ('le="1.0"',),
    }

    def exported() -> bool:
        lines = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines()
        return all(
            any(line.startswith(name) and all(tag in line for tag in tags) for line in lines)
            for name, tags in wanted.items()
        )

    wait_until(exported, timeout_s=60, what="pinstream metrics in Prometheus")


def prometheus_lines() -> list[str]:
    node = ray.get_runtime_context().get_node_id()
    port = next(n["MetricsExportPort"] for n in ray.nodes() if n["NodeID"] == node)
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines()


def batches_over_one(lines: list[str], metric: str) -> float:
    """Batches of more than one in a batch-size histogram: its count less its le=1 bucket."""
    count = sum(float(x.split()[-1]) for x in lines if x.startswith(f"{metric}_count"))
    ones = sum(
        float(x.split()[-1]) for x in lines if x.startswith(f"{metric}_bucket") and 'le="1.0"' in x
    )
    return count - ones


def queries_of(api: Api, count: int) -> list[dict]:
    """Vector and text queries with their own k and filters."""
    boards = sorted({p.event.board for p in api.pins})
    queries: list[dict] = []
    for i in range(count):
        query: dict = {"k": (3, 5, 8)[i % 3]}
        if i % 2:
            query["text"] = api.pins[i % COUNT].event.title
        else:
            query["vector"] = api.vectors[i % COUNT].tolist()
        if i % 4 == 1:
            query["boards"] = boards[: 1 + i % 3]
        if i % 5 == 2:
            query["exclude_pin_ids"] = [api.pins[(i + 1) % COUNT].event.pin_id]
        queries.append(query)
    return queries


def searched(shard_stats: dict) -> int:
    """Queries a shard replica has searched: the sum over its batch-size histogram."""
    return sum(int(size) * count for size, count in shard_stats["batches"].items())


def test_concurrent_queries_are_batched_and_each_gets_its_answer_alone(api: Api) -> None:
    queries = queries_of(api, 48)
    alone = [ids(api.post(query)) for query in queries]
    with ThreadPoolExecutor(max_workers=24) as pool:
        for _ in range(3):
            assert list(pool.map(lambda q: ids(api.post(q)), queries)) == alone
    shards = requests.get(f"{api.url}/healthz", timeout=10).json()["shards"]
    batched = {s["shard"]: {int(n): c for n, c in s["batches"].items()} for s in shards}
    assert all(max(sizes) > 1 for sizes in batched.values()), batched

    # Queries of one shape (same k, no filter) share a FAISS call whenever they share a batch;
    # a slow machine may form only batches of mixed shapes above, so send rounds of these.
    same_shape = [{"k": 5, "vector": api.vectors[i % COUNT].tolist()} for i in range(48)]
    same_alone = [ids(api.post(query)) for query in same_shape]

    def searches_were_shared() -> bool:
        with ThreadPoolExecutor(max_workers=24) as pool:
            assert list(pool.map(lambda q: ids(api.post(q)), same_shape)) == same_alone
        stats = requests.get(f"{api.url}/healthz", timeout=10).json()["shards"]
        return all(s["faiss_searches"] < searched(s) for s in stats)

    wait_until(searches_were_shared, timeout_s=120, what="fewer FAISS searches than queries")

    def text_batched() -> bool:
        return batches_over_one(prometheus_lines(), "ray_pinstream_encoder_batch_size") > 0

    wait_until(text_batched, timeout_s=60, what="a query-encoder batch of more than one text")

    def fanned_out_together() -> bool:
        return batches_over_one(prometheus_lines(), "ray_pinstream_fan_out_batch_size") > 0

    wait_until(fanned_out_together, timeout_s=60, what="searches sent to the shards together")


def test_a_batch_request_answers_in_order_with_one_call_per_shard(api: Api) -> None:
    mixed = queries_of(api, 12)  # two vectors at most: the body limit here is 32 KiB
    queries = [q for q in mixed if "text" in q] + [q for q in mixed if "vector" in q][:2]
    alone = [ids(api.post(query)) for query in queries]
    before = requests.get(f"{api.url}/healthz", timeout=10).json()["shards"]
    bad = {"vector": [0.5] * (api.cfg.shards.dim + 1)}
    response = requests.post(
        f"{api.url}/v1/search/batch",
        json={"queries": [*queries, bad]},
        headers={"x-api-key": KEY},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    items = response.json()["results"]
    assert [[hit["pin_id"] for hit in i["response"]["results"]] for i in items[:-1]] == alone
    single = api.post(bad)
    assert items[-1] == {
        "response": None,
        "error": {"status": 422, "detail": single.json()["detail"]},
    }
    after = requests.get(f"{api.url}/healthz", timeout=10).json()["shards"]
    for old, new in zip(before, after, strict=True):
        grown = {n: c - old["batches"].get(n, 0) for n, c in new["batches"].items()}
        assert {n: c for n, c in grown.items() if c} == {"8": 1}  # the whole batch, once
