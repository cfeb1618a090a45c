"""Bringing a local stack's pins back after a restart of its memory-only broker.

The embedded broker keeps nothing (DESIGN.md): a new stack starts with an empty embeddings
log, while the snapshots of the previous run still hold every pin they folded. Their log
offsets point into a log that is gone, so they cannot be resumed. Instead every live pin of the
newest good snapshot of each shard is written again into the new log as an upsert at
RESTORED_VERSION, below every source offset of the new pins topic, so that any new event of
a pin wins over its restored row; one seal then makes snapshots of the new log.

A crash at any point loses nothing that the old snapshots held: they are first moved aside to
`<storage.root>/previous/snapshots` (rename(2) on a local disk), and discarded only once the
new snapshots hold every restored pin. A start that finds them still there knows an earlier
restore stopped half-way: it drops what that restore wrote and restores from them again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from conf.config import PinstreamConfig
from conf.errors import PinstreamError
from conf.storage import resolve_uri
from jobs.sealer import seal_all
from shards.arrays import RESTORED_VERSION
from shards.log_follower import resume
from shards.shard_state import ShardState
from shards.snapshot import list_snapshots
from streams.embeddings_log import EmbeddingsLogWriter, upsert_rows
from streams.events import PinEvent
from streams.kafka_io import KafkaClientSettings

log = logging.getLogger(__name__)
SNAPSHOTS = "snapshots"
PREVIOUS = "previous"  # <storage.root>/previous/snapshots: the old ones, while they are restored
DISCARDED = "previous-restored"  # renamed away whole, so a half-done delete is never read
ROWS_PER_WRITE = 4096


class RestoreError(PinstreamError):
    """The pins of the previous run could not be restored; its snapshots are kept."""


def restore_pins(cfg: PinstreamConfig) -> int | None:
    """Write the pins of the previous run's snapshots (cfg's generation) into the new, empty
    embeddings log and seal them; how many pins came back, or None when there were none."""
    fs, base = resolve_uri(cfg.storage.root)
    if not _set_aside(fs, base):
        return None
    old = cfg.with_value("storage.root", f"{cfg.storage.root.rstrip('/')}/{PREVIOUS}")
    restored = 0
    topic = cfg.topics.embeddings
    client = KafkaClientSettings.of(cfg.broker)
    with EmbeddingsLogWriter(cfg.broker.bootstrap, topic, cfg.shards.count, client) as log_writer:
        for shard in range(cfg.shards.count):
            for rows in _restored_rows(old, shard):
                log_writer.write(rows)
                restored += rows.num_rows
        log_writer.flush()
    # The new snapshots must hold every restored pin before the old ones may go: a lost write
    # shows here, whatever the producer reported.
    live = sum(int(report.get("live", 0)) for report in seal_all(cfg))
    if live != restored:
        raise RestoreError(
            f"{restored} pins written to {topic} but {live} in its new snapshots; the previous "
            f"snapshots stay in {old.storage.root} for the next start"
        )
    _discard(fs, base)
    log.info("restored %d pins of the previous run into %s", restored, topic)
    return restored


def _set_aside(fs: pafs.FileSystem, base: str) -> bool:
    """Move <base>/snapshots to <base>/previous/snapshots, unless an earlier restore left
    them there; False when there are none."""
    current, previous = f"{base}/{SNAPSHOTS}", f"{base}/{PREVIOUS}"
    try:
        if _exists(fs, f"{base}/{DISCARDED}"):
            fs.delete_dir(f"{base}/{DISCARDED}")
        if _exists(fs, f"{previous}/{SNAPSHOTS}"):  # an earlier restore stopped half-way
            if _exists(fs, current):
                fs.delete_dir(current)  # snapshots of that restore's log, gone with its broker
            return True
        if not _exists(fs, current):
            return False
        fs.create_dir(previous, recursive=True)
        fs.move(current, f"{previous}/{SNAPSHOTS}")
        return True
    except (OSError, pa.ArrowException) as exc:
        raise RestoreError(f"cannot set the snapshots under {base} aside: {exc}") from exc


def _discard(fs: pafs.FileSystem, base: str) -> None:
    try:
        fs.move(f"{base}/{PREVIOUS}", f"{base}/{DISCARDED}")
        fs.delete_dir(f"{base}/{DISCARDED}")
    except (OSError, pa.ArrowException) as exc:
        raise RestoreError(f"cannot discard the restored snapshots under {base}: {exc}") from exc


def _restored_rows(old: PinstreamConfig, shard: int) -> Iterator[pa.Table]:
    """The live pins of the shard's newest good snapshot under `old`, as log rows in chunks."""
    follower, source = resume(old, shard)  # an empty state when the shard has no snapshot
    if source is None and list_snapshots(old.snapshot_root(shard)):
        # Snapshots exist but none loads (damaged, or written by another pinstream version):
        # restoring nothing would drop the pins they hold. They stay set aside, untouched.
        raise RestoreError(
            f"shard {shard}: no snapshot under {old.snapshot_root(shard)} can be loaded (see "
            "the warnings above); they are kept, nothing was restored"
        )
    state = follower.state
    try:
        pin_ids = sorted(state.live_pins())
        for start in range(0, len(pin_ids), ROWS_PER_WRITE):
            yield _upsert_rows(state, pin_ids[start : start + ROWS_PER_WRITE], old)
    finally:
        state.index.close()


def _upsert_rows(state: ShardState, pin_ids: list[str], cfg: PinstreamConfig) -> pa.Table:
    pins = [pin for pin in map(state.get, pin_ids) if pin is not None]
    # event_time 0: freshness skips rows without one (serve/freshness.py); a restored pin was
    # not just produced, and its real event time is not in the snapshot.
    events = [PinEvent(p["pin_id"], "upsert", title=p["title"], board=p["board"]) for p in pins]
    vectors = np.array([p["vector"] for p in pins], np.float32).reshape(len(pins), state.config.dim)
    return upsert_rows(events, vectors, RESTORED_VERSION, cfg.model.generation)


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return bool(fs.get_file_info(path).type != pafs.FileType.NotFound)
