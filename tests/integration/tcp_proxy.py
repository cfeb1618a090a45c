"""A loopback TCP proxy between the stack and the broker, for network faults in tests.

`blackhole()` keeps every connection open and accepts new ones, but forwards nothing
(bytes in either direction are read and dropped), as a partitioned network or a
stalled broker looks to a client: requests time out, they are not refused. `heal()`
forwards again; connections that lost bytes while black-holed are reset, since their
Kafka framing is broken. `reset()` resets every connection at once (RST, not FIN).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import TracebackType

from streams.local_broker import LocalBroker, free_loopback_port


class TcpProxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:upstream_port until faults are injected."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.connections = 0

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()
        return self

    def blackhole(self) -> None:
        """Stop forwarding: every request now goes unanswered."""
        self._forwarding.clear()

    def heal(self) -> None:
        """Forward again; connections that dropped bytes are reset, new ones work."""
        self.reset()
        self._forwarding.set()

    def reset(self) -> None:
        """Reset every open connection (clients see ECONNRESET and reconnect)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self.reset()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                _reset(sink)
                return
            if not self._forwarding.is_set():
                continue  # black-holed: the bytes are lost, the connection stays up
            try:
                sink.sendall(data)
            except OSError:
                _reset(source)
                return

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def broker_behind_proxy() -> Iterator[tuple[TcpProxy, LocalBroker]]:
    """A local broker that advertises a proxy in front of it: every client's traffic goes
    through the proxy, where a test injects network faults."""
    broker_port = free_loopback_port()
    proxy = TcpProxy(broker_port).start()
    try:
        with LocalBroker(port=broker_port, advertised_port=proxy.port) as broker:
            yield proxy, broker
    finally:
        proxy.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST: linger on, timeout 0."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.close()
