"""Index memory derived from the spec string, checked against what FAISS itself stores."""

from __future__ import annotations

import dataclasses
from functools import cache

import faiss
import numpy as np
import pytest

from cluster.exceptions import PlanError
from cluster.index_memory import LIST_HEADER_BYTES, index_memory


@cache
def trained(spec: str, dim: int, metric: int) -> np.ndarray:
    """A FAISS index of `spec` trained on seeded random vectors, serialized: training is the
    slow part (PQ codebooks), so each spec is trained once and copied for every size."""
    index = faiss.index_factory(dim, spec, metric)
    index.train(np.random.default_rng(0).standard_normal((1024, dim)).astype(np.float32))
    return faiss.serialize_index(index)


def serialized_size(
    spec: str, dim: int, vectors: int, metric: int = faiss.METRIC_INNER_PRODUCT
) -> int:
    """Bytes of a trained FAISS index holding `vectors` seeded random vectors, with ids."""
    rng = np.random.default_rng(1)
    index = faiss.deserialize_index(trained(spec, dim, metric).copy())
    if "IVF" not in spec:
        index = faiss.IndexIDMap(index)
    if vectors:
        data = rng.standard_normal((vectors, dim)).astype(np.float32)
        index.add_with_ids(data, np.arange(vectors, dtype=np.int64))
    return int(faiss.serialize_index(index).size)


def test_issue_example_ivf65536_pq32() -> None:
    memory = index_memory("IVF65536,PQ32", 384)
    assert memory.bytes_per_vector == 40  # 32 B PQ code + 8 B id
    assert memory.fixed_bytes == 65536 * 384 * 4 + 65536 * LIST_HEADER_BYTES + 256 * 384 * 4
    assert memory.bytes_for(10**9) == memory.fixed_bytes + 40 * 10**9


@pytest.mark.parametrize(
    ("spec", "per_vector"),
    [
        ("Flat", 32 * 4 + 8),
        ("PQ8x4", 4 + 8),
        ("SQ8", 32 + 8),
        ("SQfp16", 64 + 8),
        ("IVF16,Flat", 32 * 4 + 8),
        ("IVF16,PQ16x4", 8 + 8),
        ("IVF16,PQ4x6", 3 + 8),
        ("IVF16,SQ4", 16 + 8),
    ],
)
def test_bytes_per_vector_match_faiss(spec: str, per_vector: int) -> None:
    # Serialized FAISS indexes store exactly the codes and ids per vector, so the
    # size grows by bytes_per_vector for each vector added. (4- and 6-bit PQ keep
    # training fast; 8-bit codes differ only in the arithmetic checked above.)
    memory = index_memory(spec, 32)
    assert memory.bytes_per_vector == per_vector
    grown = serialized_size(spec, 32, 3000) - serialized_size(spec, 32, 1000)
    assert grown == 2000 * per_vector


@pytest.mark.parametrize("spec", ["IVF16,PQ8x4", "IVF16,Flat", "PQ8x4", "IVF16,SQ8"])
def test_fixed_bytes_match_faiss_within_headers(spec: str) -> None:
    memory = index_memory(spec, 32)
    in_memory_only = 16 * LIST_HEADER_BYTES if "IVF" in spec else 0
    empty = serialized_size(spec, 32, 0)
    # serialization adds a few hundred bytes of headers and per-list sizes
    assert 0 <= empty - (memory.fixed_bytes - in_memory_only) < 1024


def test_opq_adds_its_matrix_and_reduces_the_dimension() -> None:
    memory = index_memory("OPQ16_64,IVF1024,PQ16", 384)
    assert memory.bytes_per_vector == 16 + 8
    centroids = 1024 * 64 * 4  # the coarse quantizer works on the rotated 64-d vectors
    codebooks = 256 * 64 * 4
    lists = 1024 * LIST_HEADER_BYTES
    assert memory.fixed_bytes == 384 * 64 * 4 + centroids + lists + codebooks


def test_l2_ivfpq_counts_precomputed_tables_only_up_to_faiss_limit() -> None:
    ip = index_memory("IVF1024,PQ32", 384, "ip")
    l2 = index_memory("IVF1024,PQ32", 384, "l2")
    assert l2.fixed_bytes - ip.fixed_bytes == 1024 * 32 * 256 * 4
    too_big = index_memory("IVF262144,PQ32", 384, "l2")  # 8 GiB > faiss's 2 GiB limit
    assert not any("precomputed" in term for term in too_big.fixed_terms)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("HNSW32", "not one the planner can size"),
        ("IVF1024,PQ7", "divisible by 7"),
        ("IVF1024,PQ8x8fs", "4-bit"),
        ("IVF1024", "not one the planner can size"),
        ("OPQ8_512,PQ8", "OPQ output dim 512"),
    ],
)
def test_unsized_specs_are_refused_clearly(spec: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        index_memory(spec, 384)


@pytest.mark.parametrize(
    ("spec", "nlist", "encoding"),
    [
        ("IVF65536,PQ32", 65536, "PQ32x8"),
        ("IVF1024,PQ32np", 1024, "PQ32x8"),  # no polysemous training: the same codes
        ("IVF256,PQ192x4fs", 256, "PQ192x4fs"),
        ("Flat", 0, "Flat"),
        ("OPQ32,IVF16,SQ8", 16, "OPQ32_384,SQ8"),
    ],
)
def test_layout_names_lists_and_code(spec: str, nlist: int, encoding: str) -> None:
    memory = index_memory(spec, 384)
    assert (memory.nlist, memory.encoding) == (nlist, encoding)


def test_pq_without_polysemous_training_has_the_same_bytes() -> None:
    assert index_memory("IVF1024,PQ32np", 384) == dataclasses.replace(
        index_memory("IVF1024,PQ32", 384), spec="IVF1024,PQ32np"
    )


def test_codes_scanned_are_the_probed_share_of_the_lists() -> None:
    assert index_memory("IVF1024,PQ32", 384).codes_scanned(200_000, 32) == 6250
    assert index_memory("IVF16,Flat", 384).codes_scanned(1000, 64) == 1000  # nprobe > nlist
    assert index_memory("Flat", 384).codes_scanned(1000, 1) == 1000
