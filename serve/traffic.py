"""Which index generation answers a query: the traffic policy and where it is kept.

A policy names the primary generation and, optionally:
- a canary: that share of queries (percent) is answered by another generation;
- a shadow: every query is also run on another generation, scored, never served;
- a fallback: when the answering generation's top score is under `fallback_below` (low
  confidence, or no hit at all), the query is answered by the fallback generation instead;
  with `fallback_share` s the bar follows the traffic instead, so that the fallback takes
  about s of the primary's queries, those with its lowest top scores (serve/fallback_bar.py).

The policy is one JSON document under the storage root (`traffic.json`, through pyarrow.fs),
replaced atomically (temp file + move), with the previous policies kept as history so that a
rollback is one more replacement. Ingress replicas re-read it every `serve.traffic_poll_s`:
a switch takes effect for whole queries, never half of one.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from conf.config import PinstreamConfig, higher_is_better
from conf.errors import StorageError
from conf.storage import replace_file, resolve_uri
from serve.exceptions import ServeError
from streams.events import now_ms

POLICY_FILE = "traffic.json"
HISTORY_KEPT = 20


class TrafficPolicyError(ServeError):
    """A traffic policy is invalid, or cannot be read or written."""


@dataclass(frozen=True)
class TrafficPolicy:
    """Primary generation plus optional canary, shadow and fallback generations."""

    primary: str
    canary: str | None = None
    canary_percent: float = 0.0
    shadow: str | None = None
    fallback: str | None = None
    fallback_below: float = 0.0
    fallback_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fallback_share < 1.0:
            raise TrafficPolicyError(f"fallback_share must be in [0, 1), got {self.fallback_share}")
        if self.fallback_share and self.fallback is None:
            raise TrafficPolicyError("a fallback share needs a fallback generation")
        if not 0.0 <= self.canary_percent <= 100.0:
            raise TrafficPolicyError(
                f"canary_percent must be in [0, 100], got {self.canary_percent}"
            )
        if (self.canary is None) != (self.canary_percent == 0.0):
            raise TrafficPolicyError("a canary needs a generation and a percent > 0, or neither")
        for role in ("canary", "shadow", "fallback"):
            if getattr(self, role) == self.primary:
                raise TrafficPolicyError(f"the {role} generation must differ from the primary")

    @property
    def generations(self) -> list[str]:
        """Every generation the policy may send a query to."""
        named = [self.primary, self.canary, self.shadow, self.fallback]
        return list(dict.fromkeys(g for g in named if g is not None))

    def pick(self, draw: float | None = None) -> str:
        """The generation that answers one query: the canary for canary_percent of draws."""
        draw = random.random() if draw is None else draw
        if self.canary is not None and draw * 100.0 < self.canary_percent:
            return self.canary
        return self.primary

    def low_confidence(self, top_score: float | None, metric: str, bar: float) -> bool:
        """Whether an answer should go to the fallback: no hit, or a top score past `bar`
        (under it for inner product, over it for L2 distance): `fallback_below`, or the bar
        of `fallback_share` (serve/fallback_bar.py)."""
        if self.fallback is None:
            return False
        if top_score is None:
            return True
        return top_score < bar if higher_is_better(metric) else top_score > bar

    def summary(self) -> dict[str, Any]:
        """The roles that are set (what /v1/generations and /healthz show)."""
        return {key: value for key, value in asdict(self).items() if value not in (None, 0.0)}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> TrafficPolicy:
        try:
            return cls(**body)
        except TypeError as exc:
            raise TrafficPolicyError(f"not a traffic policy: {exc}") from exc


class TrafficStore:
    """Reads and replaces the policy document of one deployment."""

    def __init__(self, cfg: PinstreamConfig) -> None:
        self.default = TrafficPolicy(primary=cfg.model.generation)
        try:
            self._fs, base = resolve_uri(cfg.storage.root)
        except StorageError as exc:
            raise TrafficPolicyError(str(exc)) from exc
        self._dir = base
        self.path = f"{base}/{POLICY_FILE}"

    def document(self) -> dict[str, Any]:
        """The whole document: current policy, history (newest last), update time."""
        try:
            with self._fs.open_input_stream(self.path) as stream:
                body = json.loads(stream.read())
        except FileNotFoundError:
            return {"current": asdict(self.default), "history": [], "updated_ms": None}
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise TrafficPolicyError(f"cannot read {self.path}: {exc}") from exc
        if not isinstance(body, dict) or "current" not in body:
            raise TrafficPolicyError(f"{self.path} is not a traffic policy document")
        return body

    def current(self) -> TrafficPolicy:
        """The policy in force (the default, primary = this config's generation, if none set)."""
        return TrafficPolicy.from_dict(self.document()["current"])

    def set(self, policy: TrafficPolicy) -> TrafficPolicy:
        """Make policy current; the one it replaces goes to the history."""
        document = self.document()
        history = [*document["history"], document["current"]][-HISTORY_KEPT:]
        self._write({"current": asdict(policy), "history": history})
        return policy

    def rollback(self) -> TrafficPolicy:
        """Go back to the previous policy."""
        document = self.document()
        if not document["history"]:
            raise TrafficPolicyError("no earlier traffic policy to roll back to")
        *history, previous = document["history"]
        self._write({"current": previous, "history": history})
        return TrafficPolicy.from_dict(previous)

    def _write(self, body: dict[str, Any]) -> None:
        body = {**body, "updated_ms": now_ms()}
        try:
            self._fs.create_dir(self._dir, recursive=True)
            replace_file(self._fs, self.path, json.dumps(body, indent=1).encode())
        except (OSError, pa.ArrowException) as exc:
            raise TrafficPolicyError(f"cannot write {self.path}: {exc}") from exc
