"""Request and response bodies of the HTTP API (pydantic: a bad request gets a 422)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from conf.config import MAX_BATCH_QUERIES

MAX_K = 1000
MAX_TEXT_CHARS = 2000
MAX_PIN_ID_CHARS = 64
MAX_FILTER_BOARDS = 100
MAX_BOARD_CHARS = 200
MAX_EXCLUDED_PINS = 1000
MAX_IMAGE_URL_CHARS = 2048
GENERATION_PATTERN = r"^[A-Za-z0-9][\w.\-]{0,63}$"
# Standard base64 (RFC 4648 section 4, padded, no line breaks): the bytes of an image file.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
# The ways to say what to search with; a search body gives exactly one of them.
QUERY_FIELDS = ("text", "vector", "image_url", "image_base64")

PinId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PIN_ID_CHARS)]
Board = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BOARD_CHARS)]


class QueryOptions(BaseModel):
    """Filters and a model generation, shared by search bodies and related-pins query strings.

    Unknown fields are refused: a misspelt filter must not silently return unfiltered pins.
    """

    model_config = ConfigDict(extra="forbid")

    boards: list[Board] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FILTER_BOARDS,
        description="Only pins of these boards (omit for every board).",
    )
    exclude_pin_ids: list[PinId] = Field(
        default_factory=list,
        max_length=MAX_EXCLUDED_PINS,
        description="Never return these pins.",
    )
    generation: str | None = Field(
        default=None,
        pattern=GENERATION_PATTERN,
        description="The model generation to search (default: the traffic policy's choice); "
        "409 when it is not warm.",
    )


class SearchRequest(QueryOptions):
    """Search by `text`, `vector`, `image_url` or `image_base64` (exactly one of them)."""

    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    vector: list[float] | None = None
    image_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IMAGE_URL_CHARS,
        description="Search with the image at this URL, fetched by the deployment's images.* "
        "rules (schemes, allowed hosts, size and time caps); needs images.enabled and a "
        "model with an image tower.",
    )
    image_base64: str | None = Field(
        default=None,
        min_length=4,
        pattern=BASE64_PATTERN,
        description="Search with this image: the file's bytes (PNG, JPEG, ...) in standard "
        "base64, at most images.max_bytes once decoded.",
    )
    k: int = Field(default=10, ge=1, le=MAX_K)

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        given = [name for name in QUERY_FIELDS if getattr(self, name) is not None]
        if len(given) > 1:
            ways = ", ".join(repr(name) for name in QUERY_FIELDS)
            raise ValueError(f"give one of {ways}, not {' and '.join(map(repr, given))}")
        if not given or (given == ["text"] and not str(self.text).strip()):
            raise ValueError(
                "give a non-empty 'text' or a 'vector' (or an 'image_url' or 'image_base64')"
            )
        return self


class RelatedQuery(QueryOptions):
    """The query string of GET /v1/pins/{pin_id}/related (lists as repeated parameters)."""

    k: int = Field(default=10, ge=1, le=MAX_K)


class SearchHit(BaseModel):
    pin_id: str
    score: float
    title: str
    board: str


class SearchResponse(BaseModel):
    results: list[SearchHit]
    generation: str = Field(description="The model generation that answered.")
    fallback_from: str | None = Field(
        default=None,
        description="The generation whose answer was low-confidence, when the fallback answered.",
    )
    partial: bool
    took_ms: float
    missing_shards: list[int] = Field(default_factory=list)


class PinResponse(BaseModel):
    pin_id: str
    title: str
    board: str
    version: int
    generation: str


class BatchSearchRequest(BaseModel):
    """Many searches in one request, each with its own text, vector or image, k and filters."""

    model_config = ConfigDict(extra="forbid")

    queries: list[SearchRequest] = Field(
        min_length=1,
        max_length=MAX_BATCH_QUERIES,
        description="Answered in this order; at most serve.max_batch_queries of them.",
    )


class QueryError(BaseModel):
    """Why one query of a batch got no answer: the status code and detail that the same query
    alone would have got from POST /v1/search."""

    status: int
    detail: str


class BatchSearchItem(BaseModel):
    """One query's answer, or its error (exactly one of them)."""

    response: SearchResponse | None = None
    error: QueryError | None = None


class BatchSearchResponse(BaseModel):
    results: list[BatchSearchItem] = Field(description="One item per query, in request order.")
    took_ms: float


class ErrorResponse(BaseModel):
    """The body of every error the API itself answers (validation errors list their causes)."""

    detail: str
    request_id: str | None = None
