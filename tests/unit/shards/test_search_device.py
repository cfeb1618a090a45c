"""The search device: sealed segments searched through a device copy, on the CPU path's code.

The device under test copies each sealed index into memory on the CPU (faiss.clone_index), so
the one code path a GPU takes (batched device search, over-fetch past dead positions, rerank,
per-segment merge, CPU fallbacks) runs here; its answers must equal the CPU search of a twin
shard fed the same writes. GPU checks run where faiss sees a GPU and are skipped otherwise.
"""

from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pytest

from conf.config import ShardsConfig
from shards import ShardError, ShardIndex, ShardState
from shards.search_device import GPU_MAX_K, SearchDevice, drop_dead, gpu_count, search_device
from shards.shard_index import Where
from shards.shard_state import PIN_PAYLOAD
from shards.snapshot import open_snapshot
from streams.embeddings_log import log_rows

DIM = 32
K = 10
# Every family the device path meets: exact, IVF, lossy IVF with rerank, a pre-transform.
INDEXES = ["Flat", "IVF16,Flat", "IVF16,SQ8", "PCA16,IVF16,Flat"]


def cpu_copy_device(max_k: int = GPU_MAX_K) -> SearchDevice:
    """A 'device' that holds in-memory CPU copies: the GPU's path without a GPU."""
    return SearchDevice("cpu-copy", faiss.clone_index, max_k)


def refusing_device() -> SearchDevice:
    """A device that implements no index type, as faiss-gpu refuses HNSW or fast-scan PQ."""

    def refuse(index: faiss.Index) -> faiss.Index:
        raise RuntimeError("This index type is not implemented on GPU.")

    return SearchDevice("refusing", refuse)


def twins(
    sealed_index: str, device: SearchDevice, metric: str = "ip"
) -> tuple[ShardIndex, ShardIndex]:
    config = ShardsConfig(
        dim=DIM,
        metric=metric,  # type: ignore[arg-type]
        sealed_index=sealed_index,
        growing_limit=1_500,
        nprobe=4,
        compact_dead_fraction=1.0,  # keep dead positions: the over-fetch path is under test
        search_device="cpu",
    )
    return ShardIndex(config), ShardIndex(config, device=device)


def write_both(indexes: tuple[ShardIndex, ...], seed: int = 0) -> np.ndarray:
    """Three sealed segments with dead positions (replaced and deleted ids); the queries."""
    rng = np.random.default_rng(seed)
    keys = np.arange(4_000, dtype=np.int64)
    vectors = rng.standard_normal((keys.size, DIM)).astype(np.float32)
    replaced = rng.choice(keys[:3_000], 150, replace=False)
    deleted = rng.choice(np.setdiff1d(keys[:3_000], replaced), 100, replace=False)
    new_vectors = rng.standard_normal((replaced.size, DIM)).astype(np.float32)
    for index in indexes:
        index.upsert(keys, vectors)
        index.seal()
        index.upsert(replaced, new_vectors)
        index.delete(deleted)
    return rng.standard_normal((64, DIM)).astype(np.float32)


def assert_same_answers(
    got: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray]
) -> None:
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sealed_index", INDEXES)
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_device_search_equals_the_cpu_search(sealed_index: str, metric: str) -> None:
    device = cpu_copy_device()
    cpu, on_device = twins(sealed_index, device, metric)
    queries = write_both((cpu, on_device))
    stats = on_device.stats()
    sealed = [s for s in stats["segments"] if s["sealed"]]
    assert len(sealed) >= 2 and all(s["on_device"] for s in sealed)
    assert any(s["dead"] for s in sealed)  # the over-fetch past dead positions is exercised
    for k in (K, 200):  # 200: deeper than a segment's share of the top list
        assert_same_answers(on_device.search(queries, k), cpu.search(queries, k))
    assert device.searches >= len(sealed)  # one batched call per sealed segment at least
    assert on_device.stats()["search_device"] == "cpu-copy"


def test_one_device_call_per_segment_for_a_batch_of_queries() -> None:
    device = cpu_copy_device()
    cpu, on_device = twins("Flat", device)
    queries = write_both((cpu, on_device))
    sealed = sum(s["sealed"] for s in on_device.stats()["segments"])
    before = device.searches
    on_device.search(queries, K)
    assert device.searches - before == sealed


def test_filtered_searches_run_on_the_cpu() -> None:
    device = cpu_copy_device()
    cpu, on_device = twins("IVF16,Flat", device)
    queries = write_both((cpu, on_device))
    before = device.searches
    # An excluded id is a filter: an IDSelector, which GPU indexes do not take.
    where = Where.of(exclude=[1, 2, 3])
    assert_same_answers(on_device.search(queries, K, where), cpu.search(queries, K, where))
    assert device.searches == before


def test_too_many_dead_positions_for_the_device_fall_back_to_the_cpu() -> None:
    device = cpu_copy_device(max_k=64)  # fewer than k + the dead positions of a segment
    cpu, on_device = twins("IVF16,Flat", device)
    queries = write_both((cpu, on_device))
    before = device.searches
    assert_same_answers(on_device.search(queries, K), cpu.search(queries, K))
    dead = [s for s in on_device.stats()["segments"] if s["sealed"] and s["dead"] + K > 64]
    assert dead and device.searches - before < sum(
        s["sealed"] for s in on_device.stats()["segments"]
    )


def test_an_index_the_device_cannot_hold_stays_on_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    device = refusing_device()
    cpu, on_device = twins("IVF16,Flat", device)
    queries = write_both((cpu, on_device))
    assert_same_answers(on_device.search(queries, K), cpu.search(queries, K))
    assert device.searches == 0
    assert not any(s["on_device"] for s in on_device.stats()["segments"])
    assert "stays on the CPU" in caplog.text


def test_a_mapped_index_is_copied_from_memory() -> None:
    copied: list[faiss.Index] = []

    def record(index: faiss.Index) -> faiss.Index:
        copied.append(index)
        return faiss.clone_index(index)

    cpu, on_device = twins("IVF16,Flat", SearchDevice("recording", record))
    write_both((cpu, on_device))
    segment_indexes = {id(s.index) for s in on_device._segments}
    assert copied and not {id(index) for index in copied} & segment_indexes


def test_a_swapped_in_snapshot_keeps_the_device_and_its_copies(tmp_path: Path) -> None:
    device = cpu_copy_device()
    config = ShardsConfig(dim=DIM, sealed_index="Flat", growing_limit=500, search_device="cpu")
    state = ShardState(config, ShardIndex(config, payload_schema=PIN_PAYLOAD, device=device))
    rows = _log_rows(1_200)
    state.apply_rows(rows)
    state.index.seal()
    uri = state.save(str(tmp_path))
    snapshot = open_snapshot(uri)
    assert "search_device" not in snapshot.meta["config"]  # where to search is not the data's
    swapped = ShardState.from_snapshot(snapshot, share_with=state)
    assert swapped.index.stats()["search_device"] == "cpu-copy"
    held = [s.index for s in state.index._segments if s.sealed]
    assert held and all(device.holds(index) for index in held)
    before = device.searches
    queries = np.random.default_rng(1).standard_normal((8, DIM)).astype(np.float32)
    assert swapped.search(queries, K) == state.search(queries, K)
    assert device.searches > before
    fresh = ShardState.from_snapshot(open_snapshot(uri))  # no device given: auto
    assert fresh.index.stats()["search_device"] == ("cuda" if gpu_count() else "cpu")


def test_drop_dead_keeps_the_first_live_results_in_order() -> None:
    scores = np.array([[9, 8, 7, 6], [5, 4, 3, 2]], dtype=np.float32)
    labels = np.array([[0, 1, 2, 3], [3, -1, 1, 0]], dtype=np.int64)
    dead = np.array([False, True, False, True])
    kept_scores, kept = drop_dead(scores, labels, dead, 2, np.float32(-np.inf))
    np.testing.assert_array_equal(kept, [[0, 2], [0, -1]])
    np.testing.assert_array_equal(kept_scores, [[9, 7], [2, -np.inf]])


def test_device_settings() -> None:
    assert search_device("cpu").on_cpu
    with pytest.raises(ValueError, match="search_device must be one of"):
        search_device("gpu")
    with pytest.raises(ValueError, match="search_device must be auto"):
        ShardsConfig(search_device="tpu")  # type: ignore[arg-type]
    if gpu_count():
        pytest.skip("faiss sees a GPU: 'cuda' and 'auto' resolve to it")
    assert search_device("auto").on_cpu
    with pytest.raises(ShardError, match="faiss sees no GPU"):
        search_device("cuda")
    with pytest.raises(ShardError, match="faiss sees no GPU"):
        ShardIndex(ShardsConfig(dim=DIM, search_device="cuda"))


@pytest.mark.gpu
@pytest.mark.parametrize("sealed_index", ["Flat", "IVF16,Flat", "IVF16,PQ8"])
def test_gpu_search_agrees_with_the_cpu(sealed_index: str) -> None:
    if not gpu_count():
        pytest.skip("no GPU that faiss can use (faiss-cpu installed, or no CUDA device)")
    device = search_device("cuda")
    cpu, on_gpu = twins(sealed_index, device)
    queries = write_both((cpu, on_gpu))
    assert all(s["on_device"] for s in on_gpu.stats()["segments"] if s["sealed"])
    got, expected = on_gpu.search(queries, K), cpu.search(queries, K)
    # GPU kernels sum in another order: near-ties may swap, the sets hardly differ.
    overlap = np.mean([len(set(a) & set(b)) / K for a, b in zip(got[1], expected[1], strict=True)])
    assert overlap >= 0.98
    assert device.searches > 0


def _log_rows(n: int) -> pa.Table:
    vectors = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    return log_rows(
        pin_ids=[f"pin-{i}" for i in range(n)],
        ops=["upsert"] * n,
        versions=list(range(n)),
        generation="test-gen",
        vectors=vectors,
        titles=[f"t{i}" for i in range(n)],
        boards=["b"] * n,
        event_times=[1_700_000_000_000] * n,
        dim=DIM,
    )
