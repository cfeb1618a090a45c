"""Fetching a pin's image from its `image_url`, without opening an SSRF hole.

`file://`, `s3://` and `gs://` go through pyarrow.fs (conf/storage.py), with the credentials
of the workers' environment: a URL that carries credentials (user:secret@, a query) is
refused. `http(s)://` goes only to the hosts of `images.allowed_hosts`, and:

- the host is resolved once, every address it resolves to is checked against the private,
  loopback, link-local, multicast and reserved ranges (unless allowed), and the connection
  is made to the address that was checked, with the URL's host as Host header and TLS name,
  so a DNS answer that changes between check and connect (DNS rebinding) reaches nothing;
- redirects are followed only to the same scheme, host and port, a few times, each one
  checked (and resolved) again; a redirect anywhere else is refused;
- bytes are read in chunks and the fetch refused as soon as `images.max_bytes` is passed;
- `images.timeout_s` bounds the whole fetch: each socket operation waits at most the time
  left. (Name resolution and pyarrow's object-store calls keep their own timeouts.)

Every refusal raises an ImageRefused subclass whose reason goes to the dead-letter topic.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import SplitResult, urljoin, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from conf.config import ImagesConfig
from conf.errors import StorageError
from conf.storage import resolve_uri
from streams.exceptions import (
    ImageFetchFailed,
    ImageRedirectRefused,
    ImageTimeout,
    ImageTooLarge,
    ImageURLRefused,
    PrivateAddressRefused,
)

MAX_REDIRECTS = 3
CHUNK_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_WEB = frozenset(_DEFAULT_PORTS)
_MAX_REASON_CHARS = 300

Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for a TCP connection to `port`."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def non_global_kind(address: str) -> str | None:
    """Which reserved range `address` is in ("loopback", "private", ...), None if global."""
    ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 zone (fe80::1%eth0) is no part
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-global"


class ImageFetcher:
    """Reads the bytes of an image URL within `images`' limits; picklable (no open clients).

    `resolve` turns a host into its addresses (the system resolver unless a test says).
    """

    def __init__(self, images: ImagesConfig, resolve: Resolver = resolve_host) -> None:
        self.images = images
        self.resolve = resolve

    def fetch(self, url: str) -> bytes:
        """The bytes at `url`; an ImageRefused subclass says why when it cannot be had."""
        deadline = time.monotonic() + self.images.timeout_s
        parts = self.checked_url(url)
        if parts.scheme in _WEB:
            return self._fetch_web(parts, deadline)
        return self._fetch_file(url, deadline)

    def checked_url(self, url: str) -> SplitResult:
        """`url` split, once its scheme, credentials, host and form are allowed."""
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            raise ImageURLRefused("image_url contains whitespace or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ImageURLRefused(f"image_url is not a valid URL: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in self.images.schemes:
            allowed = ", ".join(self.images.schemes) or "none"
            raise ImageURLRefused(
                f"scheme {scheme or '(none)'!r} is not allowed (images.schemes: {allowed})"
            )
        if parts.username is not None or parts.password is not None:
            raise ImageURLRefused("image_url must not carry credentials (user:password@)")
        if scheme in _WEB:
            host = parts.hostname or ""
            if host not in self.images.allowed_hosts:
                raise ImageURLRefused(f"host {host!r} is not in images.allowed_hosts")
            if port == 0:
                raise ImageURLRefused("image_url names port 0")
        elif scheme == "file":
            if parts.netloc or parts.query:  # file:///path: pyarrow.fs takes no host either
                raise ImageURLRefused("a file:// image_url names a local path, no host or query")
        elif parts.query:  # pyarrow.fs reads access keys and endpoints from a URI's query
            raise ImageURLRefused(f"a {scheme}:// image_url must not carry a query")
        return parts._replace(scheme=scheme)

    def _fetch_file(self, url: str, deadline: float) -> bytes:
        try:
            fs, path = resolve_uri(url)
            info = fs.get_file_info(path)
            if info.type != pafs.FileType.File:
                raise ImageFetchFailed(f"no image at {_short(url)}: not found")
            if info.size is not None and info.size > self.images.max_bytes:
                raise self._too_large(info.size)
            with fs.open_input_stream(path) as stream:
                return self._read_capped(lambda: stream.read(CHUNK_BYTES), deadline)
        except StorageError as exc:  # its message names the URL already
            raise ImageFetchFailed(_short(str(exc))) from exc
        except (OSError, pa.ArrowException) as exc:
            raise ImageFetchFailed(_short(f"cannot read {url}: {exc}")) from exc

    def _fetch_web(self, parts: SplitResult, deadline: float) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            pool, response = self._request(parts, deadline)
            try:
                if response.status in _REDIRECTS:
                    parts = self._redirect(parts, response.headers.get("Location"))
                    continue
                if response.status != 200:
                    raise ImageFetchFailed(f"HTTP {response.status} from {parts.hostname}")
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > self.images.max_bytes:
                    raise self._too_large(int(length))
                return self._read_capped(partial(self._read_web, response, deadline), deadline)
            except HTTPError as exc:
                raise _web_error(exc, parts) from exc
            finally:
                response.release_conn()
                pool.close()
        raise ImageRedirectRefused(f"more than {MAX_REDIRECTS} redirects")

    def _redirect(self, parts: SplitResult, location: str | None) -> SplitResult:
        """The checked URL a same-host redirect leads to; any other is refused."""
        if not location:
            raise ImageFetchFailed(f"a redirect from {parts.hostname} without a Location")
        target = urlsplit(urljoin(parts.geturl(), location))
        try:
            same = (target.scheme.lower(), target.hostname, _port(target)) == (
                parts.scheme,
                parts.hostname,
                _port(parts),
            )
        except ValueError as exc:
            raise ImageRedirectRefused(f"a redirect to an invalid URL: {exc}") from exc
        if not same:  # named without its credentials, if it has any
            where = f"{target.scheme}://{target.hostname}:{_port(target)}"
            raise ImageRedirectRefused(
                f"redirect from {parts.hostname} to another host or scheme refused: {where}"
            )
        return self.checked_url(target.geturl())

    def _request(
        self, parts: SplitResult, deadline: float
    ) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
        """The response to a GET of `parts`, from the first checked address that connects."""
        host, port = parts.hostname or "", _port(parts)
        addresses = self._checked_addresses(host, port)
        bracketed = f"[{host}]" if ":" in host else host  # an IPv6 literal
        headers = {
            "Host": bracketed if parts.port is None else f"{bracketed}:{parts.port}",
            "Accept-Encoding": "identity",
        }
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt, address in enumerate(addresses, start=1):
            pool: urllib3.HTTPConnectionPool
            if parts.scheme == "https":
                # The checked address is connected to; the certificate is checked for `host`.
                pool = urllib3.HTTPSConnectionPool(
                    address, port, server_hostname=host, assert_hostname=host, maxsize=1
                )
            else:
                pool = urllib3.HTTPConnectionPool(address, port, maxsize=1)
            try:
                response = pool.urlopen(
                    "GET",
                    target,
                    headers=headers,
                    retries=False,
                    redirect=False,
                    timeout=urllib3.Timeout(connect=_left(deadline), read=_left(deadline)),
                    preload_content=False,
                    assert_same_host=False,
                )
            except NewConnectionError as exc:  # as a browser does: the next address, if any
                pool.close()
                if attempt == len(addresses):
                    raise _web_error(exc, parts) from exc
            except HTTPError as exc:
                pool.close()
                raise _web_error(exc, parts) from exc
            else:
                return pool, response
        raise AssertionError("unreachable: a host has at least one address")

    def _checked_addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host` to connect to, once every address it has is allowed."""
        try:
            addresses = self.resolve(host, port)
        except OSError as exc:
            raise ImageFetchFailed(f"cannot resolve host {host!r}: {exc}") from exc
        if not addresses:
            raise ImageFetchFailed(f"host {host!r} resolves to no address")
        if not self.images.allow_private_addresses:
            for address in addresses:
                kind = non_global_kind(address)
                if kind is not None:
                    raise PrivateAddressRefused(
                        f"host {host!r} resolves to {address}, a {kind} address "
                        "(images.allow_private_addresses is off)"
                    )
        return list(dict.fromkeys(address.split("%")[0] for address in addresses))

    def _read_web(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        # Each socket operation waits at most the time left, so a server that drips bytes
        # cannot hold the fetch past its deadline.
        sock = getattr(response.connection, "sock", None)
        if sock is not None:
            sock.settimeout(_left(deadline))
        return response.read1(CHUNK_BYTES)

    def _read_capped(self, read: Callable[[], bytes], deadline: float) -> bytes:
        """Chunks from `read` until it returns none; refused once over the cap or the time."""
        chunks: list[bytes] = []
        total = 0
        while True:
            _left(deadline)
            chunk = read()
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > self.images.max_bytes:
                raise self._too_large(None)
            chunks.append(chunk)

    def _too_large(self, size: int | None) -> ImageTooLarge:
        cap = self.images.max_bytes
        if size is None:
            return ImageTooLarge(f"image is over images.max_bytes ({cap}); refused reading it")
        return ImageTooLarge(f"image of {size} bytes is over images.max_bytes ({cap})")


def _left(deadline: float) -> float:
    """Seconds left before `deadline`; ImageTimeout when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ImageTimeout("image not fetched within images.timeout_s")
    return left


def _port(parts: SplitResult) -> int:
    return parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)


def _web_error(exc: HTTPError, parts: SplitResult) -> ImageTimeout | ImageFetchFailed:
    # urllib3 makes a refused connection a kind of connect timeout: it is not one here.
    if isinstance(exc, TimeoutError) and not isinstance(exc, NewConnectionError):
        return ImageTimeout(f"image not fetched from {parts.hostname} within images.timeout_s")
    return ImageFetchFailed(_short(f"cannot fetch from {parts.hostname}: {exc}"))


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."
