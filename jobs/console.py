"""What a `pinstream` command shows on the terminal: quiet frameworks, one line of progress.

Without -v a command shows what a user acts on: pinstream's own lines, addresses, progress,
and every real warning or error. Ray, Ray Data, Serve and kafka-python also report on their
own internals in ways no user can act on; each such report is silenced here, by name, at the
logger or stream it comes from, so that anything else they say still shows. With -v nothing
is silenced.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import BinaryIO, TextIO

FRAMEWORK_LOGGERS = ("ray", "ray.data", "ray.serve", "kafka")

# Loggers whose warnings are all about a choice pinstream makes on purpose.
QUIET_LOGGERS = {
    # "Token authentication is enabled for this Ray cluster": the local stack's own token.
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
    # "Progress bars disabled": the ingest job turns them off and shows progress its own way.
    "ray.data._internal.progress": logging.ERROR,
}

# Lines the native (C++) core worker of a Ray driver writes straight to its stderr, past
# Python's logging. Its only knob, RAY_BACKEND_LOG_LEVEL, reaches every Ray process started
# from this one and would empty their log files too.
NATIVE_NOISE = (
    # Ray Data hands every actor pool its arguments through the object store and lets its
    # actors restart (ray-project/ray#57733); logged once per driver, whatever the job.
    re.compile(
        rb"core_worker\.cc:\d+: Actor with class name: .* has constructor arguments in the "
        rb"object store and max_restarts > 0"
    ),
)


# Messages the raylet pushes to the driver, which Ray's driver prints to its stdout.
DRIVER_NOISE = (
    # "N PYTHON worker processes have been started ..., which is Nx the maximum expected
    # startup concurrency": the stack's dozen actors on a machine of two cores, by design.
    re.compile(r"\(raylet\).* PYTHON worker processes have been started on node"),
)


class KafkaClientInternals(logging.Filter):
    """Drops kafka-python's reports about the client itself rather than about the cluster."""

    def filter(self, record: logging.LogRecord) -> bool:
        from kafka.errors import Cancelled

        if record.name == "kafka.cluster":
            # A metadata request in flight when the client closes: logged as an ERROR.
            args = record.args if isinstance(record.args, tuple) else ()
            return not (
                str(record.msg).startswith("Metadata refresh: failed")
                and any(isinstance(arg, Cancelled) for arg in args)
            )
        if record.name == "kafka.net.transport":
            # A read the I/O loop had scheduled on a transport that closing the client has
            # just torn down (its socket already None): logged as an ERROR with a traceback.
            error = record.exc_info[1] if record.exc_info else None
            return not (
                isinstance(error, AttributeError)
                and "'NoneType' object has no attribute" in str(error)
            )
        # A step of its I/O loop over 0.1 s of wall time, which on a busy machine is the GIL
        # or the CPU elsewhere, not a loop of the client's: "... blocking the event loop".
        return "blocking the event loop" not in record.getMessage()


def configure_logging(verbose: bool) -> None:
    """Log pinstream's own lines; frameworks at WARNING, less their noise (all with -v)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    if verbose:
        return
    for name in FRAMEWORK_LOGGERS:
        # Ray's own INFO lines (executions starting, Serve apps ready) drown the output.
        logging.getLogger(name).setLevel(logging.WARNING)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    internals = KafkaClientInternals()
    for name in ("kafka.cluster", "kafka.net.selector", "kafka.net.transport"):
        kafka_logger = logging.getLogger(name)
        if not any(isinstance(f, KafkaClientInternals) for f in kafka_logger.filters):
            kafka_logger.addFilter(internals)


class NativeStderrFilter:
    """Passes this process's stderr (fd 2) through a child process that drops NATIVE_NOISE.

    Everything else written to fd 2, by Python or native code, reaches the original stderr
    unchanged. A child rather than a thread: after a native crash it still drains the pipe,
    so the crash's last words reach the terminal. It ignores SIGINT and SIGTERM (Ctrl-C
    reaches the whole process group) and ends when the last writer closes the pipe.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._child: subprocess.Popen[bytes] | None = None
        self._saved_stderr: int | None = None

    def __enter__(self) -> NativeStderrFilter:
        if not self.enabled:
            return self
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "jobs.console"], stdin=read_end, stdout=2
            )
            self._saved_stderr = os.dup(2)
            os.dup2(write_end, 2)
        finally:
            os.close(read_end)
            os.close(write_end)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._saved_stderr is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved_stderr, 2)  # the pipe's last writer goes: the child drains and ends
        os.close(self._saved_stderr)
        self._saved_stderr = None
        if self._child is not None:
            # A process started meanwhile may hold the pipe still: then the child outlives us.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(timeout=5)
            self._child = None


class DriverMessagesFilter(io.TextIOBase):
    """Stands in for sys.stdout and drops the DRIVER_NOISE lines Ray's driver prints there.

    Whole lines are checked; a partial one (a progress bar redrawn with "\\r") goes
    through when it is flushed.
    """

    def __init__(self, sink: TextIO) -> None:
        super().__init__()
        self.sink = sink
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if not any(pattern.search(line) for pattern in DRIVER_NOISE):
                self.sink.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.sink.write(self._pending)
            self._pending = ""
        self.sink.flush()

    def isatty(self) -> bool:
        return self.sink.isatty()

    def fileno(self) -> int:
        return self.sink.fileno()


@contextlib.contextmanager
def quiet_terminal(enabled: bool = True) -> Iterator[None]:
    """While a command runs Ray: stderr through NativeStderrFilter, stdout through
    DriverMessagesFilter (both off with -v)."""
    if not enabled:
        yield
        return
    stdout = sys.stdout
    with NativeStderrFilter():
        sys.stdout = DriverMessagesFilter(stdout)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stdout = stdout


def pass_filtered(source: BinaryIO, sink: BinaryIO) -> None:
    """Copy lines from `source` to `sink` until EOF, less the NATIVE_NOISE ones."""
    writable = True
    for line in iter(source.readline, b""):
        if not writable or any(pattern.search(line) for pattern in NATIVE_NOISE):
            continue
        try:
            sink.write(line)
            sink.flush()
        except OSError:
            writable = False  # the terminal is gone: keep draining, so writers never block


class Progress:
    """Progress of long work: one line redrawn in place on a terminal, else a line now and then.

    `total` None counts without a bar (a backfill, whose end is not known in advance).
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        out: TextIO,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.out = out
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.interactive = out.isatty()
        self._last_shown: float | None = None
        self._width = 0  # of the line last drawn, so that a shorter one covers it

    def render(self, done: int) -> str:
        """The line for `done` units, without line ending."""
        elapsed = f"{self.clock() - self.started:.0f}s"
        if self.total is None or self.total <= 0:
            return f"  {self.label}: {done}  {elapsed}"
        share = min(max(done, 0) / self.total, 1.0)
        if not self.interactive:
            return f"  {self.label}: {done}/{self.total} ({share:.0%})  {elapsed}"
        filled = round(share * 30)
        bar = "#" * filled + "-" * (30 - filled)
        return f"  {self.label} [{bar}] {done}/{self.total} {share:4.0%}  {elapsed}"

    def update(self, done: int) -> None:
        """Show `done`: redrawn at most ten times a second on a terminal, else every `every_s`."""
        now = self.clock()
        interval = 0.1 if self.interactive else self.every_s
        if self._last_shown is not None and now - self._last_shown < interval:
            return
        self._last_shown = now
        self._show(done)

    def finish(self, done: int) -> None:
        """Show `done` a last time (on a terminal, leave the line where it is)."""
        if self.interactive:
            self._show(done)
            self.out.write("\n")
            self.out.flush()

    def _show(self, done: int) -> None:
        line = self.render(done)
        if self.interactive:
            self.out.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.out.write(line + "\n")
        self.out.flush()


if __name__ == "__main__":  # the child of NativeStderrFilter
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pass_filtered(sys.stdin.buffer, sys.stdout.buffer)
