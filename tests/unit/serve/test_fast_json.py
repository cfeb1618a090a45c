"""JSON bodies read by pydantic's parser give the routes what json.loads gives them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.routing import APIRoute

from serve.fast_json import FastJsonRequest, FastJsonRoute
from tests.unit.serve.test_http_api import make_client

BODIES = [
    b'{"vector": [0.1, -2.5e-3, 1e300, 3], "k": 10}',
    b'{"text": "caf\\u00e9 \\ud83d\\ude00", "boards": ["a", "b"], "k": 5}',
    b'{"k": 123456789012345678901234567890}',  # past 64 bits
    b'{"vector": [NaN, Infinity, -Infinity]}',  # json.loads takes these
    b'{"k": 1, "k": 2}',  # the last one wins
    b'"\\ud800"',  # a lone surrogate: only json.loads takes it
    b"[]",
]


def parsed(body: bytes) -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    request = FastJsonRequest({"type": "http", "method": "POST", "headers": []}, receive)
    return asyncio.run(request.json())


@pytest.mark.parametrize("body", BODIES)
def test_a_body_parses_to_what_json_loads_gives(body: bytes) -> None:
    got, want = parsed(body), json.loads(body)
    assert json.dumps(got) == json.dumps(want)  # NaN != NaN: compare the dumps
    assert type(got) is type(want)


def test_a_body_that_is_not_json_raises_json_loads_error() -> None:
    with pytest.raises(json.JSONDecodeError) as raised:
        parsed(b'{"k": 1,')
    assert raised.value.pos == 8


def test_every_api_route_reads_its_body_so() -> None:
    with make_client() as client:
        routes = [r for r in client.app.routes if isinstance(r, APIRoute)]  # type: ignore[attr-defined]
        assert routes and all(isinstance(r, FastJsonRoute) for r in routes)
        response = client.post(
            "/v1/search",
            content=b'{"k": 1,',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert response.json()["detail"][0]["loc"] == ["body", 8]
