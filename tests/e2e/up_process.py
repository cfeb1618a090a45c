"""`pinstream up` as a user runs it: its own process group, ready once its state file says so."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.waiting import wait_until

PINSTREAM = [sys.executable, "-m", "jobs.cli"]


def ready_state(state_file: Path, pid: int | None = None) -> dict[str, Any] | None:
    """The state file's content once the stack (of `pid`, when given) says it is ready."""
    try:
        state = dict(json.loads(state_file.read_text()))
    except (OSError, ValueError):
        return None
    if state.get("status") != "ready" or (pid is not None and state.get("pid") != pid):
        return None  # starting, or left behind by an earlier stack
    return state


class UpProcess:
    """One `pinstream up --config config` run, logging to `log_path` (appended)."""

    def __init__(self, config: Path, state_file: Path, log_path: Path) -> None:
        self.config, self.state_file, self.log_path = config, state_file, log_path
        with open(log_path, "a") as log:
            self.process = subprocess.Popen(
                [*PINSTREAM, "--config", str(config), "up"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as a terminal would give it
            )
        self.state: dict[str, Any] = {}

    def wait_ready(self, timeout_s: float = 240) -> dict[str, Any]:
        """Wait until this run's state file says ready; its content."""
        pid = self.process.pid
        wait_until(
            lambda: ready_state(self.state_file, pid) or self.process.poll() is not None,
            timeout_s,
            "pinstream up ready",
        )
        assert self.process.poll() is None, self.log_tail()
        self.state = ready_state(self.state_file, pid) or {}
        return self.state

    def interrupt(self, timeout_s: float = 120) -> int:
        """Ctrl-C, as a terminal sends it to the whole group; the exit code."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=timeout_s)

    def kill_group(self) -> None:
        """kill -9 of the whole process group, as `kill -9 -PGID` does."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def leftovers(self) -> list[int]:
        """Processes of its session still alive: Ray puts its workers in groups of their own,
        so the group alone would not show them."""
        found = subprocess.run(
            ["pgrep", "-s", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in found.stdout.split()]

    def wait_all_gone(self, timeout_s: float = 60) -> None:
        """Wait until no process of its session is left (Ray's workers end by themselves,
        once their raylet is gone)."""
        wait_until(lambda: not self.leftovers(), timeout_s, "every process of the stack gone")

    def close(self) -> None:
        """Stop it whatever state it is in, leaving no process of its session (teardown)."""
        if self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.interrupt(timeout_s=90)
        if self.process.poll() is None:
            self.kill_group()
        with contextlib.suppress(AssertionError):
            self.wait_all_gone(timeout_s=30)
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]
