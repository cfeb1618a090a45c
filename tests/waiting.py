"""Deadlines, never bare sleeps: wait for a condition or fail saying which."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object], timeout_s: float = 60.0, what: str = "condition"
) -> None:
    """Poll `predicate` until it is truthy; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout_s}s")


def holds(predicate: Callable[[], object], seconds: float, what: str = "condition") -> None:
    """Poll `predicate` for `seconds`; AssertionError naming `what` the first time it is falsy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            raise AssertionError(f"{what} stopped holding")
        time.sleep(0.1)
