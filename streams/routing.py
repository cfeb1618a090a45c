"""Pin id → shard number, FAISS id and owner fingerprint, stable across processes and Pythons.

Routing lives with the embeddings log, which partitions by it (partition = shard_of(pin_id)),
below the shards that fold each partition: `streams.embeddings_log` and `shards` both import it
downward. The FAISS id shares the same digest, so a pin's two numbers come from one place.
"""

import hashlib
from collections.abc import Sequence

import numpy as np

_INT63_MASK = (1 << 63) - 1


def _digest64(pin_id: str, person: bytes = b"") -> int:
    # blake2b, not hash(): hash() of a str is salted per process (PYTHONHASHSEED).
    if not isinstance(pin_id, str):
        raise TypeError(f"pin_id must be str, got {type(pin_id).__name__}")
    digest = hashlib.blake2b(pin_id.encode(), digest_size=8, person=person).digest()
    return int.from_bytes(digest, "big")


def shard_of(pin_id: str, num_shards: int) -> int:
    """Return the shard in [0, num_shards) that owns pin_id."""
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"num_shards must be an int >= 1, got {num_shards!r}")
    return _digest64(pin_id) % num_shards


def pin_key(pin_id: str) -> int:
    """Return the non-negative int64 FAISS id of pin_id."""
    return _digest64(pin_id) & _INT63_MASK


def pin_keys(pin_ids: Sequence[str], bits: int = 63) -> np.ndarray:
    """Return the FAISS ids of pin_ids (their low `bits` bits) as an int64 array."""
    mask = (1 << bits) - 1
    return np.fromiter((pin_key(p) & mask for p in pin_ids), dtype=np.int64, count=len(pin_ids))


def pin_owners(pin_ids: Sequence[str]) -> np.ndarray:
    """A second 64-bit digest of each pin id, independent of its key: tells apart two pins
    whose keys collide (two pins share key and owner with odds of about 2**-127)."""
    return np.fromiter(
        (_digest64(p, b"pin-owner") for p in pin_ids), dtype=np.uint64, count=len(pin_ids)
    ).view(np.int64)
