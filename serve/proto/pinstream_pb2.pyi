from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchRequest(_message.Message):
    __slots__ = ("text", "vector", "k", "boards", "exclude_pin_ids", "generation", "image_url", "image_base64")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    BOARDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PIN_IDS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BASE64_FIELD_NUMBER: _ClassVar[int]
    text: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    boards: _containers.RepeatedScalarFieldContainer[str]
    exclude_pin_ids: _containers.RepeatedScalarFieldContainer[str]
    generation: str
    image_url: str
    image_base64: str
    def __init__(self, text: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., boards: _Optional[_Iterable[str]] = ..., exclude_pin_ids: _Optional[_Iterable[str]] = ..., generation: _Optional[str] = ..., image_url: _Optional[str] = ..., image_base64: _Optional[str] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("pin_id", "score", "title", "board")
    PIN_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BOARD_FIELD_NUMBER: _ClassVar[int]
    pin_id: str
    score: float
    title: str
    board: str
    def __init__(self, pin_id: _Optional[str] = ..., score: _Optional[float] = ..., title: _Optional[str] = ..., board: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "generation", "fallback_from", "partial", "took_ms", "missing_shards")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FROM_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchHit]
    generation: str
    fallback_from: str
    partial: bool
    took_ms: float
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, results: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., generation: _Optional[str] = ..., fallback_from: _Optional[str] = ..., partial: _Optional[bool] = ..., took_ms: _Optional[float] = ..., missing_shards: _Optional[_Iterable[int]] = ...) -> None: ...

class BatchSearchRequest(_message.Message):
    __slots__ = ("queries",)
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[SearchRequest]
    def __init__(self, queries: _Optional[_Iterable[_Union[SearchRequest, _Mapping]]] = ...) -> None: ...

class BatchSearchError(_message.Message):
    __slots__ = ("status", "detail")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    status: int
    detail: str
    def __init__(self, status: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class BatchSearchItem(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: SearchResponse
    error: BatchSearchError
    def __init__(self, response: _Optional[_Union[SearchResponse, _Mapping]] = ..., error: _Optional[_Union[BatchSearchError, _Mapping]] = ...) -> None: ...

class BatchSearchResponse(_message.Message):
    __slots__ = ("results", "took_ms")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchSearchItem]
    took_ms: float
    def __init__(self, results: _Optional[_Iterable[_Union[BatchSearchItem, _Mapping]]] = ..., took_ms: _Optional[float] = ...) -> None: ...

class GetPinRequest(_message.Message):
    __slots__ = ("pin_id",)
    PIN_ID_FIELD_NUMBER: _ClassVar[int]
    pin_id: str
    def __init__(self, pin_id: _Optional[str] = ...) -> None: ...

class PinResponse(_message.Message):
    __slots__ = ("pin_id", "title", "board", "version", "generation")
    PIN_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BOARD_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    pin_id: str
    title: str
    board: str
    version: int
    generation: str
    def __init__(self, pin_id: _Optional[str] = ..., title: _Optional[str] = ..., board: _Optional[str] = ..., version: _Optional[int] = ..., generation: _Optional[str] = ...) -> None: ...

class RelatedRequest(_message.Message):
    __slots__ = ("pin_id", "k", "boards", "exclude_pin_ids", "generation")
    PIN_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    BOARDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PIN_IDS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    pin_id: str
    k: int
    boards: _containers.RepeatedScalarFieldContainer[str]
    exclude_pin_ids: _containers.RepeatedScalarFieldContainer[str]
    generation: str
    def __init__(self, pin_id: _Optional[str] = ..., k: _Optional[int] = ..., boards: _Optional[_Iterable[str]] = ..., exclude_pin_ids: _Optional[_Iterable[str]] = ..., generation: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("healthy", "status", "generation", "pins", "missing_shards", "body")
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    PINS_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    status: str
    generation: str
    pins: int
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    body: _struct_pb2.Struct
    def __init__(self, healthy: _Optional[bool] = ..., status: _Optional[str] = ..., generation: _Optional[str] = ..., pins: _Optional[int] = ..., missing_shards: _Optional[_Iterable[int]] = ..., body: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
