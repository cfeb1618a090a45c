"""Whether the ingest job is running, retrying or stopped, and why: one small JSON document
under the storage root (`run/ingest.json`, through pyarrow.fs), written by the job on every
change of state and every few seconds, read by `/healthz` and `pinstream status`.

A document not updated for `STALE_AFTER_S` belongs to a job that is gone.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa

from conf.errors import StorageError
from conf.storage import replace_file, resolve_uri

HEALTH_FILE = "run/ingest.json"
STALE_AFTER_S = 30.0

State = Literal["starting", "running", "retrying", "stopped"]


@dataclass(frozen=True)
class PoolReport:
    """The embedder pool as the job last saw it: actors and bounds, the freshness SLO (0 =
    none) with the current figures, and the last move of the job's floor and of the pool."""

    running: int
    pending: int
    floor: int
    min_size: int
    max_size: int
    slo_p99_s: float
    freshness_p99_s: float | None  # None: nothing written in the window
    lag_s: float | None  # the lag at the current rate; None: records wait, none are written
    decision: str | None = None  # the freshness rule's last move of the floor, and why
    decided_at: float | None = None
    move: str | None = None  # the pool's last resize (by the floor or by Ray Data's rule)
    moved_at: float | None = None

    def describe(self, now: float | None = None) -> list[str]:
        """The report as lines for people (`pinstream status`)."""
        now = time.time() if now is None else now
        p99 = "-" if self.freshness_p99_s is None else f"{self.freshness_p99_s:.2f} s"
        lag = "stalled" if self.lag_s is None else f"{self.lag_s:.2f} s"
        slo = f"SLO p99 <= {self.slo_p99_s:g} s" if self.slo_p99_s else "no SLO"
        lines = [
            f"embedder pool: {self.running} running, {self.pending} starting "
            f"(floor {self.floor}, bounds {self.min_size}..{self.max_size}); "
            f"freshness p99 {p99}, lag {lag} ({slo})"
        ]
        for what, text, at in (
            ("last floor move", self.decision, self.decided_at),
            ("last pool move", self.move, self.moved_at),
        ):
            if text is not None and at is not None:
                lines.append(f"{what}: {text} ({now - at:.0f} s ago)")
        return lines


@dataclass(frozen=True)
class IngestHealth:
    """What the ingest job reports about itself."""

    state: State
    reason: str | None = None
    since: float = field(default_factory=time.time)  # epoch seconds the state began
    updated: float = field(default_factory=time.time)
    retries: int = 0  # attempts since the last good checkpoint
    events: int = 0
    dead_letters: int = 0
    committed: dict[int, int] = field(default_factory=dict)
    lag: dict[int, int] = field(default_factory=dict)  # records behind, per partition
    pool: PoolReport | None = None

    def stale(self, now: float | None = None) -> bool:
        """True when a job that is not stopped has not reported for STALE_AFTER_S."""
        now = time.time() if now is None else now
        return self.state != "stopped" and now - self.updated > STALE_AFTER_S

    def flowing(self) -> bool:
        """Whether new pins still arrive: the job is starting or running, and reporting."""
        return self.state in ("starting", "running") and not self.stale()

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """The document as JSON, with `stale: true` when the job stopped reporting."""
        return {**asdict(self), "stale": self.stale(now)}


def write_health(root: str, health: IngestHealth) -> None:
    """Publish the job's health under `root` (replaced whole: readers never see a part)."""
    fs, path = resolve_uri(root)
    fs.create_dir(f"{path}/run", recursive=True)
    replace_file(fs, f"{path}/{HEALTH_FILE}", json.dumps(asdict(health)).encode())


def read_health(root: str) -> IngestHealth | None:
    """The last health the job published under `root`; None when no job has run there."""
    try:
        fs, path = resolve_uri(root)
        with fs.open_input_stream(f"{path}/{HEALTH_FILE}") as stream:
            doc = json.loads(stream.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, pa.ArrowException, StorageError) as exc:
        return IngestHealth("stopped", f"ingest health unreadable: {exc}")
    for key in ("committed", "lag"):  # JSON keys are strings
        doc[key] = {int(p): o for p, o in doc.get(key, {}).items()}
    pool = doc.get("pool")
    doc["pool"] = PoolReport(**pool) if pool else None
    return IngestHealth(**doc)
