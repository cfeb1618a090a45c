"""A real HTTP server on loopback that serves images and misbehaves on purpose, per path."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ENDLESS_LIMIT = 64 * 1024 * 1024  # an endless body still ends here, should a client not stop


@dataclass
class ServerLog:
    """What the server saw and did: each request's (path, Host header), bytes sent per path,
    and the most requests it was answering at once."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


class QuietServer(ThreadingHTTPServer):
    """Clients that stop reading (over the byte cap, past the timeout) are what the tests
    do on purpose: their broken connections are not reported on the test output."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class ImageServer:
    """`files` are served at their path; the other routes are the faults below."""

    def __init__(self, files: dict[str, bytes], tls: tuple[Path, Path] | None = None) -> None:
        self.files = files
        self.log = ServerLog()
        self.scheme = "http" if tls is None else "https"
        handler = _handler(self.files, self.log)
        self.http = QuietServer(("127.0.0.1", 0), handler)
        if tls is not None:  # (certificate, key): the handshake happens in each handler thread
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.http.socket = context.wrap_socket(
                self.http.socket, server_side=True, do_handshake_on_connect=False
            )
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def paths_requested(self) -> list[str]:
        with self.log.lock:
            return [path for path, _ in self.log.requests]


@contextmanager
def image_server(
    files: dict[str, bytes], tls: tuple[Path, Path] | None = None
) -> Iterator[ImageServer]:
    """A running ImageServer (HTTPS with `tls`), stopped (stalled handlers released) on exit."""
    server = ImageServer(files, tls)
    server._thread.start()
    try:
        yield server
    finally:
        server.log.stopping.set()
        server.http.shutdown()
        server.http.server_close()


def _handler(files: dict[str, bytes], log: ServerLog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet in test output
            pass

        def do_GET(self) -> None:
            with log.lock:
                log.requests.append((self.path, self.headers.get("Host", "")))
                log.in_flight += 1
                log.most_in_flight = max(log.most_in_flight, log.in_flight)
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it should on a refusal
            finally:
                with log.lock:
                    log.in_flight -= 1

        def _answer(self) -> None:
            path, _, query = self.path.partition("?")
            if path in files:
                self._send(200, files[path])
            elif path.startswith("/slow/"):  # held open a while: overlapping fetches show
                log.stopping.wait(0.3)
                self._send(200, files[path.removeprefix("/slow")])
            elif path == "/redirect-same":
                self._redirect(f"/{query}")
            elif path == "/redirect-absolute":  # the same host, spelt out
                self._redirect(f"http://{self.headers['Host']}/{query}")
            elif path == "/redirect-other":  # another host name of the same server
                self._redirect(f"http://localhost:{self.server.server_address[1]}/{query}")
            elif path == "/redirect-scheme":  # the same host and port, another scheme
                self._redirect(f"ftp://{self.headers['Host']}/{query}")
            elif path == "/redirect-loop":
                self._redirect("/redirect-loop")
            elif path == "/big":
                self._send(200, b"\0" * (2 * 1024 * 1024))
            elif path == "/endless":  # no Content-Length: only counting tells the size
                self._stream(lambda sent: sent < ENDLESS_LIMIT, b"\0" * 65536)
            elif path == "/drip":  # a byte every 50 ms: every read is quick, the whole is not
                self._stream(lambda sent: not log.stopping.wait(0.05) and sent < 400, b"\0")
            elif path == "/stall":  # never answers
                log.stopping.wait(30)
            else:
                self._send(404, b"not found")

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self._count(len(body))

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _stream(self, more, chunk: bytes) -> None:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            while more(sent):
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                self._count(len(chunk))

        def _count(self, n: int) -> None:
            with log.lock:
                log.sent[self.path] = log.sent.get(self.path, 0) + n

    return Handler
