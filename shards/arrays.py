"""Array contracts at the shard boundary: ids, versions and float32 matrices."""

from typing import Any

import numpy as np

_INT64_MAX = np.iinfo(np.int64).max
# The version of a row restored from a snapshot into a fresh log whose offsets start again at 0
# (jobs/restore.py): below every source offset, so any event of the new log wins over it.
RESTORED_VERSION = -1


def check_int_array(
    values: Any, name: str, minimum: int = 0, maximum: int = _INT64_MAX
) -> np.ndarray:
    """Return values as a 1-D int64 array of ints in [minimum, maximum], or raise ValueError."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and int(array.max()) > _INT64_MAX:
        raise ValueError(f"{name} must fit in int64, got a value above {_INT64_MAX}")
    array = array.astype(np.int64, copy=False)
    if int(array.min()) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {int(array.min())}")
    if int(array.max()) > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {int(array.max())}")
    return array


def check_ids(ids: Any) -> np.ndarray:
    """Return ids as int64[n]; negative ids are refused because FAISS uses -1 for "no result"."""
    return check_int_array(ids, "ids")


def check_versions(versions: Any, n: int) -> np.ndarray | None:
    """Return versions as int64[n] (source offsets, or RESTORED_VERSION), or None when not given."""
    if versions is None:
        return None
    array = check_int_array(versions, "versions", RESTORED_VERSION)
    if array.shape[0] != n:
        raise ValueError(f"ids and versions must have the same length, got {n} and {len(array)}")
    return array


def check_matrix(values: Any, dim: int, name: str) -> np.ndarray:
    """Return values as a C-contiguous float32 [n, dim] array of finite numbers."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, {dim}], got shape {array.shape}")
    if array.shape[1] != dim:
        raise ValueError(f"{name} must have dimension {dim}, got {array.shape[1]}")
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be real numbers, got dtype {array.dtype}")
    with np.errstate(over="ignore"):  # values too large for float32 are refused just below
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (no NaN or inf, also after casting to float32)")
    return array
