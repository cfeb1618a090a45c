"""The run-state file of a local stack, `<storage.root>/run/stack.json`: its addresses and
whether it is ready, for the commands that talk to it (`produce`, `query`, `status`, ...).

`pinstream up` writes it with status "starting" as soon as the broker and Ray addresses are
known, before the API can answer, and rewrites it with status "ready" once the API is healthy:
a client that found `/healthz` healthy always finds the file. A client that finds a stack
starting waits for it, a bounded time; a file whose pid is gone was left by a stack that was
killed and is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conf.config import PinstreamConfig
from conf.errors import PinstreamError

log = logging.getLogger(__name__)
STATE_FILE = "run/stack.json"
STARTING = "starting"
READY = "ready"
READY_WAIT_S = 60.0  # how long a client waits for a starting stack
POLL_S = 0.5


def state_path(cfg: PinstreamConfig) -> Path:
    """Where a running local stack writes its addresses, for `produce` and `query`."""
    return Path(cfg.storage.root) / STATE_FILE


def read_state(cfg: PinstreamConfig) -> dict[str, Any] | None:
    """The state file's content as written, or None when there is none."""
    try:
        return dict(json.loads(state_path(cfg).read_text()))
    except (OSError, ValueError):
        return None


def write_state(cfg: PinstreamConfig, state: dict[str, Any]) -> None:
    """Replace the state file whole, so that a reader never sees half of it."""
    path = state_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(state))
    os.replace(temporary, path)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_state(
    cfg: PinstreamConfig,
    wait_s: float = READY_WAIT_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> dict[str, Any]:
    """The addresses of the running local stack, once it is ready; a clear error when none runs,
    or when one is still starting after `wait_s`."""
    deadline = clock() + wait_s
    waiting = False
    while True:
        state = read_state(cfg)
        pid = int(state.get("pid", 0)) if state is not None else 0
        if state is None or not process_alive(pid):  # none, or left behind by a killed stack
            raise PinstreamError(
                "no local stack is running (start one with `pinstream up`), or pass the address"
            )
        if state.get("status") == READY:
            return state
        if clock() >= deadline:
            raise PinstreamError(
                f"the local stack (pid {pid}) is still starting after {wait_s:.0f}s; "
                "run this again once `pinstream up` says it is up"
            )
        if not waiting:
            log.warning(
                "waiting up to %.0fs for the local stack (pid %d) to start ...", wait_s, pid
            )
            waiting = True
        sleep(min(POLL_S, max(0.0, deadline - clock())))
