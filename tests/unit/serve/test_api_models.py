"""SearchRequest: what a search body must hold; anything else is a validation error (422)."""

from typing import Any

import pytest
from pydantic import ValidationError

from serve.api_models import MAX_K, MAX_TEXT_CHARS, SearchRequest


def test_defaults() -> None:
    request = SearchRequest(text="walnut coffee table")
    assert request.k == 10
    assert request.vector is None
    assert request.text == "walnut coffee table"


def test_vector_only() -> None:
    request = SearchRequest.model_validate({"vector": [0.5, -1, 2.25], "k": 3})
    assert request.vector == [0.5, -1.0, 2.25]
    assert request.text is None
    assert request.k == 3


@pytest.mark.parametrize("k", [1, 2, MAX_K])
def test_k_in_bounds(k: int) -> None:
    assert SearchRequest(text="lamp", k=k).k == k


@pytest.mark.parametrize("k", [0, -1, MAX_K + 1, 10**9, 2.5, "ten", None])
def test_k_out_of_bounds_or_not_an_int(k: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        SearchRequest.model_validate({"text": "lamp", "k": k})
    assert [error["loc"] for error in refused.value.errors()] == [("k",)]


def test_max_k_is_a_thousand() -> None:
    assert MAX_K == 1000


def test_text_and_vector_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="not 'text' and 'vector'"):
        SearchRequest(text="lamp", vector=[1.0, 0.0])


def test_an_image_is_a_query_of_its_own() -> None:
    assert SearchRequest(image_url="file:///pins/a.png").image_url == "file:///pins/a.png"
    assert SearchRequest(image_base64="aGk=").image_base64 == "aGk="
    with pytest.raises(ValidationError, match="not 'text' and 'image_url' and 'image_base64'"):
        SearchRequest(text="lamp", image_url="file:///pins/a.png", image_base64="aGk=")


@pytest.mark.parametrize("data", ["aGk", "aGk=\n", "a===", "aG k=", "aGk=aGk=", "-_8="])
def test_image_base64_is_standard_padded_base64(data: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SearchRequest(image_base64=data)
    assert [error["loc"] for error in refused.value.errors()] == [("image_base64",)]


@pytest.mark.parametrize("body", [{}, {"k": 5}, {"text": None}, {"text": None, "vector": None}])
def test_neither_text_nor_vector_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="non-empty 'text' or a 'vector'"):
        SearchRequest.model_validate(body)


@pytest.mark.parametrize("text", ["", " ", "\t\n  "])
def test_blank_text_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="non-empty 'text' or a 'vector'"):
        SearchRequest(text=text)


def test_text_length_limit() -> None:
    assert SearchRequest(text="x" * MAX_TEXT_CHARS).text == "x" * MAX_TEXT_CHARS
    with pytest.raises(ValidationError) as refused:
        SearchRequest(text="x" * (MAX_TEXT_CHARS + 1))
    assert refused.value.errors()[0]["loc"] == ("text",)


@pytest.mark.parametrize("vector", ["1,2,3", [1.0, "x"], 3.0])
def test_vector_must_be_a_list_of_numbers(vector: Any) -> None:
    with pytest.raises(ValidationError):
        SearchRequest.model_validate({"vector": vector})


def test_from_json_body() -> None:
    request = SearchRequest.model_validate_json('{"text": "boho rug", "k": 50}')
    assert (request.text, request.vector, request.k) == ("boho rug", None, 50)
