"""Embedder on parsed polls: the TextEncoder's vectors for rows with text, null for the rest."""

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
import torch

from conf.config import ModelConfig
from encoder.embedder import Embedder, encode_isolating, vector_column
from encoder.exceptions import EncoderError
from encoder.text_encoder import TextEncoder, model_path
from streams.embeddings_log import log_schema
from streams.events import encode_pin_event
from streams.parse_stage import ParseEvents
from streams.poll_batch import empty_records, pack, records_of, spans_table, unpack
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
    raw = records_of(0, records)
    return ParseEvents()(pack(raw, spans_table([])))


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
    assert embedder.encoder.config == ModelConfig()
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
    error = pa.array([None, None], pa.string())
    flat = unpack(embedder(pack(pa.table({"text": texts, "error": error}), spans_table([]))))
    assert flat.column("vector").to_pylist() == [None, None]
    assert flat.schema.field("vector").type == pa.list_(pa.float32(), 384)


def test_empty_poll(embedder: Embedder) -> None:
    poll = ParseEvents()(pack(empty_records(), spans_table([])))
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


def test_model_path_of_the_base_model_and_of_a_folder() -> None:
    assert model_path(ModelConfig(batch_size=8, max_seq_length=128, device="cpu")) is None
    assert model_path(ModelConfig(name="/models/ft-7")) == "/models/ft-7"


def poisoned(encode, poison: str):
    """The real encoder, refusing any batch that holds `poison` (a value it cannot take)."""

    def encode_or_refuse(texts: list[str]) -> np.ndarray:
        if poison in texts:
            raise RuntimeError(f"cannot embed {poison!r}")
        return encode(texts)

    return encode_or_refuse


def test_a_text_the_encoder_refuses_is_found_and_the_rest_embedded(embedder: Embedder) -> None:
    texts = [f"oak table number {i}" for i in range(9)]
    texts[6] = "POISON"
    encode = embedder.encoder.encode
    vectors, reasons = encode_isolating(poisoned(encode, "POISON"), texts, embedder.encoder.dim)
    assert reasons[6] == "embedding failed: RuntimeError: cannot embed 'POISON'"
    assert [r for i, r in enumerate(reasons) if i != 6] == [None] * 8
    good = [t for t in texts if t != "POISON"]
    cosines = row_cosines(np.delete(vectors, 6, axis=0), encode(good))
    assert cosines.min() > 0.9999
    assert not vectors[6].any()


def test_a_non_finite_vector_fails_its_text_only(embedder: Embedder) -> None:
    encode = embedder.encoder.encode

    def nan_for_walnut(texts: list[str]) -> np.ndarray:
        out = encode(texts)
        out[[i for i, t in enumerate(texts) if "walnut" in t]] = np.nan
        return out

    texts = ["oak stool", "walnut desk", "linen sofa"]
    vectors, reasons = encode_isolating(nan_for_walnut, texts, embedder.encoder.dim)
    assert reasons == [None, "embedding failed: the vector is not finite", None]
    assert np.isfinite(vectors).all()


def test_an_encoder_that_fails_on_everything_is_a_bug_not_bad_data() -> None:
    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("CUDA error: device-side assert")

    with pytest.raises(EncoderError, match="fails on every input"):
        encode_isolating(broken, ["oak stool", "walnut desk"], 384)


def test_the_embedder_marks_a_refused_record_and_keeps_the_rest(embedder: Embedder) -> None:
    poll = parsed_poll()
    flat_in = unpack(poll)
    texts = flat_in.column("text").to_pylist()
    victim = next(t for t in texts if t is not None)
    original = embedder.encoder.encode
    embedder.encoder.encode = poisoned(original, victim)  # type: ignore[method-assign]
    try:
        flat = unpack(embedder(poll))
    finally:
        embedder.encoder.encode = original  # type: ignore[method-assign]
    errors = flat.column("error").to_pylist()
    vectors = flat.column("vector").to_pylist()
    for text, error, error_in, vector in zip(
        texts, errors, flat_in.column("error").to_pylist(), vectors, strict=True
    ):
        if text == victim:
            assert error is not None and error.startswith("embedding failed")
            assert vector is None
        else:
            assert error == error_in
            assert (vector is not None) == (text is not None)
