"""Request and response bodies of the HTTP API (pydantic: a bad request gets a 422)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

MAX_K = 1000
MAX_TEXT_CHARS = 2000


class SearchRequest(BaseModel):
    """Search by `text` or by `vector` (exactly one of them)."""

    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    vector: list[float] | None = None
    k: int = Field(default=10, ge=1, le=MAX_K)

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        if self.vector is None and (self.text is None or not self.text.strip()):
            raise ValueError("give a non-empty 'text' or a 'vector'")
        if self.vector is not None and self.text is not None:
            raise ValueError("give either 'text' or 'vector', not both")
        return self


class SearchHit(BaseModel):
    pin_id: str
    score: float
    title: str
    board: str


class SearchResponse(BaseModel):
    results: list[SearchHit]
    generation: str
    partial: bool
    took_ms: float
    missing_shards: list[int] = Field(default_factory=list)


class PinResponse(BaseModel):
    pin_id: str
    title: str
    board: str
    version: int
    generation: str
