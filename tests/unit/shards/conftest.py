from collections.abc import Iterator
from typing import Any

import faiss
import pytest

import shards.segments
from tests.unit.shards.builds import BlockedBuilds


@pytest.fixture
def blocked_builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlockedBuilds]:
    """Sealed-index builds wait until blocked_builds.release is set (set again at teardown)."""
    blocked = BlockedBuilds(monkeypatch)
    yield blocked
    blocked.release.set()


@pytest.fixture(autouse=True, scope="package")
def _one_faiss_thread() -> Iterator[None]:
    """Unit-test data is small: one FAISS thread, in the test thread and in the background
    builds, avoids OpenMP spin-waits when the CPU is shared."""
    build = shards.segments.build_index

    def single_threaded_build(*args: Any) -> Any:
        faiss.omp_set_num_threads(1)  # per thread: the shard's worker thread here
        return build(*args)

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards.segments, "build_index", single_threaded_build)
        yield
    faiss.omp_set_num_threads(threads)
