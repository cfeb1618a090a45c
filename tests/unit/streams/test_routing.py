"""Routing is stable across processes and spreads pins evenly over shards."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streams.routing import pin_key, pin_keys, shard_of

REPO_ROOT = Path(__file__).resolve().parents[3]

# Computed once from blake2b; a change here re-routes every pin of a deployed cluster.
REGRESSION = [
    # pin_id, shard_of(., 8), shard_of(., 1000), pin_key(.)
    ("pin-0", 4, 276, 2950799190471757276),
    ("pin-1", 5, 581, 5329670474299843773),
    ("pin-42", 4, 196, 6366713715913903388),
    ("abc", 1, 721, 6393727014797677913),
    ("", 4, 876, 7252660547403494068),
]


@pytest.mark.parametrize(("pin_id", "shard8", "shard1000", "key"), REGRESSION)
def test_values_are_fixed(pin_id: str, shard8: int, shard1000: int, key: int) -> None:
    assert shard_of(pin_id, 8) == shard8
    assert shard_of(pin_id, 1000) == shard1000
    assert pin_key(pin_id) == key


def test_stable_across_processes_with_different_hash_seeds() -> None:
    code = (
        "from streams.routing import shard_of, pin_key; "
        "print(shard_of('pin-42', 8), pin_key('pin-42'))"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        outputs.add(result.stdout.strip())
    assert outputs == {"4 6366713715913903388"}


def test_one_shard_owns_everything() -> None:
    assert {shard_of(f"pin-{i}", 1) for i in range(100)} == {0}


def test_roughly_uniform_over_8_shards() -> None:
    counts = np.bincount([shard_of(f"pin-{i}", 8) for i in range(10_000)], minlength=8)
    assert counts.sum() == 10_000
    expected = 10_000 / 8
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    # 7 degrees of freedom: P(chi2 > 24.3) = 0.001 for a uniform hash.
    assert chi_square < 24.3, counts
    assert counts.min() > 0.9 * expected and counts.max() < 1.1 * expected, counts


@pytest.mark.parametrize("num_shards", [0, -3])
def test_bad_num_shards_raises(num_shards: int) -> None:
    with pytest.raises(ValueError, match="num_shards"):
        shard_of("pin-0", num_shards)


def test_pin_keys_matches_pin_key() -> None:
    pin_ids = [f"pin-{i}" for i in range(1_000)]
    keys = pin_keys(pin_ids)
    assert keys.dtype == np.int64
    assert keys.shape == (1_000,)
    assert keys.tolist() == [pin_key(p) for p in pin_ids]
    assert (keys >= 0).all()
    assert len(set(keys.tolist())) == 1_000


def test_pin_keys_of_nothing_is_empty_int64() -> None:
    keys = pin_keys([])
    assert keys.dtype == np.int64
    assert keys.shape == (0,)


def test_non_str_pin_id_raises() -> None:
    with pytest.raises(TypeError):
        pin_key(42)  # type: ignore[arg-type]
