"""Embedder on parsed polls: the TextEncoder's vectors for rows with text, null for the rest."""

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
import torch

from conf.config import ModelConfig
from encoder.embedder import Embedder, encoder_config, vector_column
from encoder.text_encoder import EncoderConfig, TextEncoder
from streams.embeddings_log import log_schema
from streams.events import encode_pin_event
from streams.parse_stage import ParseEvents
from streams.poll_batch import RECORD_SCHEMA, empty_records, pack, unpack
from streams.synthetic import PinGenerator, malformed_events


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    threads = torch.get_num_threads()
    yield Embedder(ModelConfig())
    torch.set_num_threads(threads)  # Embedder sets the process-wide count; later tests get theirs


def parsed_poll() -> pa.Table:
    """A packed poll after ParseEvents: upserts, a delete and malformed records interleaved."""
    generator = PinGenerator(seed=3)
    pins = generator.pins(5, event_time=1_000)
    records: list[tuple[bytes | None, bytes | None]] = [encode_pin_event(p.event) for p in pins]
    records.insert(2, encode_pin_event(generator.delete(pins[0].event.pin_id, event_time=2_000)))
    bad = [(key, value) for key, value, _ in malformed_events()[:3]]
    records = records[:4] + bad + records[4:]
    n = len(records)
    raw = pa.table(
        {
            "partition": pa.array([0] * n, pa.int32()),
            "offset": pa.array(range(n), pa.int64()),
            "timestamp_ms": pa.array([0] * n, pa.int64()),
            "key": pa.array([key for key, _ in records], pa.binary()),
            "value": pa.array([value for _, value in records], pa.binary()),
        },
        schema=RECORD_SCHEMA,
    )
    return ParseEvents()(pack(raw))


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(axis=1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


def test_vectors_equal_the_text_encoders(embedder: Embedder) -> None:
    poll = parsed_poll()
    flat_in = unpack(poll)
    flat = unpack(embedder(poll))
    assert flat.num_rows == flat_in.num_rows
    assert flat.drop_columns(["vector"]).equals(flat_in)  # every other column untouched
    texts = flat.column("text").to_pylist()
    present = [t is not None for t in texts]
    assert 0 < sum(present) < len(texts)  # both kinds of row are in the poll

    vectors = flat.column("vector").combine_chunks()
    assert vectors.type == log_schema(embedder.encoder.dim).field("vector").type
    assert vectors.is_valid().to_pylist() == present

    assert isinstance(embedder.encoder, TextEncoder)
    assert embedder.encoder.config == encoder_config(ModelConfig())
    reference = embedder.encoder.encode([t for t in texts if t is not None])
    got = np.array([v for v in vectors.to_pylist() if v is not None], dtype=np.float32)
    assert got.shape == reference.shape == (sum(present), 384)
    assert row_cosines(got, reference).min() >= 0.9999


def test_rows_without_text_get_a_null_vector(embedder: Embedder) -> None:
    flat = unpack(embedder(parsed_poll()))
    for row in flat.to_pylist():
        if row["error"] is not None or row["op"] == "delete":
            assert row["text"] is None
            assert row["vector"] is None
        else:
            assert row["vector"] is not None
            assert np.linalg.norm(row["vector"]) == pytest.approx(1.0, abs=1e-5)


def test_poll_with_no_text_at_all(embedder: Embedder) -> None:
    texts = pa.array([None, None], pa.string())
    flat = unpack(embedder(pack(pa.table({"text": texts}))))
    assert flat.column("vector").to_pylist() == [None, None]
    assert flat.schema.field("vector").type == pa.list_(pa.float32(), 384)


def test_empty_poll(embedder: Embedder) -> None:
    poll = ParseEvents()(pack(empty_records()))
    out = embedder(poll)
    assert out.num_rows == 1
    flat = unpack(out)
    assert flat.num_rows == 0
    assert flat.schema.field("vector").type == pa.list_(pa.float32(), 384)


def test_vector_column_places_vectors_and_nulls() -> None:
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    present = np.array([False, True, True, False, True])
    column = vector_column(vectors, present)
    assert column.type == pa.list_(pa.float32(), 2)
    assert column.to_pylist() == [None, [0.0, 1.0], [2.0, 3.0], None, [4.0, 5.0]]


def test_vector_column_all_present_and_none_present() -> None:
    vectors = np.ones((2, 3), dtype=np.float32)
    assert vector_column(vectors, np.array([True, True])).null_count == 0
    empty = vector_column(np.zeros((0, 3), dtype=np.float32), np.array([False, False]))
    assert empty.to_pylist() == [None, None]
    assert empty.type == pa.list_(pa.float32(), 3)


def test_encoder_config_of_the_base_model() -> None:
    config = encoder_config(ModelConfig(batch_size=8, max_seq_length=128, device="cpu"))
    assert config == EncoderConfig(model_path=None, device="cpu", batch_size=8, max_seq_length=128)
    assert encoder_config(ModelConfig(name="/models/ft-7")).model_path == "/models/ft-7"
