"""The image fetcher against a real HTTP server on loopback and real local files: what it
fetches, and every refusal with its reason (the SSRF ones with private addresses off)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf.config import ImagesConfig
from streams.exceptions import (
    ImageFetchFailed,
    ImageRedirectRefused,
    ImageTimeout,
    ImageTooLarge,
    ImageURLRefused,
    PrivateAddressRefused,
)
from streams.image_fetch import ImageFetcher, non_global_kind, resolve_host
from streams.synthetic import PinGenerator
from streams.synthetic_images import render_pin_image
from tests.unit.streams.certificates import write_tls_files
from tests.unit.streams.image_server import ImageServer, image_server


def png_bytes(index: int = 0) -> bytes:
    pin = PinGenerator(seed=5).pins(index + 1, event_time=1)[index]
    out = io.BytesIO()
    render_pin_image(pin, seed=5, size=32).save(out, "PNG")
    return out.getvalue()


IMAGE = png_bytes()
# The server is on loopback: only the tests that need to reach it allow private addresses.
REACHABLE = ImagesConfig(
    allowed_hosts=("127.0.0.1", "localhost", "images.test"),
    allow_private_addresses=True,
    max_bytes=1024 * 1024,
    timeout_s=1.0,
)
GUARDED = ImagesConfig(allowed_hosts=REACHABLE.allowed_hosts, max_bytes=1024 * 1024)


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    with image_server({"/image.png": IMAGE}) as running:
        yield running


class CountingResolver:
    """The system resolver, or fixed answers per host; counts the lookups."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = answers or {}
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers.get(host) or resolve_host(host, port)


def test_an_image_from_an_allowed_host_arrives_whole(server: ImageServer) -> None:
    assert ImageFetcher(REACHABLE).fetch(server.url("/image.png")) == IMAGE


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/image.png", "gopher://127.0.0.1/", "data:image/png;base64,AAAA", "/a.png"],
)
def test_a_scheme_not_allowed_is_refused(url: str) -> None:
    with pytest.raises(ImageURLRefused, match=r"scheme .* is not allowed"):
        ImageFetcher(REACHABLE).fetch(url)


def test_a_scheme_left_out_of_the_config_is_refused(server: ImageServer, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(IMAGE)
    web_only = ImagesConfig(**{**REACHABLE.__dict__, "schemes": ("https",)})
    before = len(server.paths_requested())
    for url in (server.url("/image.png"), (tmp_path / "a.png").as_uri()):
        with pytest.raises(ImageURLRefused, match=r"images.schemes: https"):
            ImageFetcher(web_only).fetch(url)
    assert len(server.paths_requested()) == before


def test_a_host_not_in_allowed_hosts_is_refused_before_any_request(server: ImageServer) -> None:
    only_other = ImagesConfig(**{**REACHABLE.__dict__, "allowed_hosts": ("images.example.com",)})
    before = len(server.paths_requested())
    for host in ("127.0.0.1", "localhost", "LOCALHOST"):
        with pytest.raises(ImageURLRefused, match=r"is not in images.allowed_hosts"):
            ImageFetcher(only_other).fetch(server.url("/image.png", host=host))
    with pytest.raises(ImageURLRefused, match="allowed_hosts"):
        ImageFetcher(ImagesConfig()).fetch("https://images.example.com/a.png")  # none by default
    assert len(server.paths_requested()) == before


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_host_is_refused_with_private_addresses_off(
    server: ImageServer, host: str
) -> None:
    before = len(server.paths_requested())
    with pytest.raises(PrivateAddressRefused, match="a loopback address"):
        ImageFetcher(GUARDED).fetch(server.url("/image.png", host=host))
    assert len(server.paths_requested()) == before  # refused before connecting


def test_a_host_with_any_private_address_is_refused() -> None:
    # A public answer beside a private one: the connection could go to either.
    resolver = CountingResolver({"images.test": ["93.184.215.14", "10.1.2.3"]})
    with pytest.raises(PrivateAddressRefused, match=r"10\.1\.2\.3, a private address"):
        ImageFetcher(GUARDED, resolver).fetch("http://images.test/a.png")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 reaches the IPv4 address
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata services
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-global"),  # carrier-grade NAT
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_non_global_ranges_are_named(address: str, kind: str | None) -> None:
    assert non_global_kind(address) == kind


def test_the_connection_goes_to_the_address_that_was_checked(server: ImageServer) -> None:
    # images.test resolves only through this resolver (.test is never delegated): the fetch
    # reaches the server only if it connects to the checked address, not to a new lookup.
    resolver = CountingResolver({"images.test": ["127.0.0.1"]})
    url = server.url("/image.png", host="images.test")
    assert ImageFetcher(REACHABLE, resolver).fetch(url) == IMAGE
    assert resolver.lookups == ["images.test"]
    assert server.log.requests[-1] == ("/image.png", f"images.test:{server.port}")


def test_an_address_that_does_not_connect_gives_way_to_the_next(server: ImageServer) -> None:
    # Nothing listens on ::1 (or IPv6 is off) at the server's port: the IPv4 address serves.
    resolver = CountingResolver({"images.test": ["::1", "127.0.0.1"]})
    url = server.url("/image.png", host="images.test")
    assert ImageFetcher(REACHABLE, resolver).fetch(url) == IMAGE
    assert resolver.lookups == ["images.test"]


@pytest.mark.parametrize("path", ["/redirect-same?image.png", "/redirect-absolute?image.png"])
def test_a_redirect_to_the_same_host_is_followed_and_checked_again(
    server: ImageServer, path: str
) -> None:
    resolver = CountingResolver()
    assert ImageFetcher(REACHABLE, resolver).fetch(server.url(path)) == IMAGE
    assert resolver.lookups == ["127.0.0.1", "127.0.0.1"]  # resolved and checked per hop


@pytest.mark.parametrize(
    ("path", "where"),
    [
        # localhost is allowed too, and is the same server: still another host.
        ("/redirect-other?image.png", "http://localhost:"),
        ("/redirect-scheme?image.png", "ftp://127.0.0.1:"),
    ],
)
def test_a_redirect_to_another_host_or_scheme_is_refused(
    server: ImageServer, path: str, where: str
) -> None:
    before = len(server.paths_requested())
    with pytest.raises(ImageRedirectRefused, match=f"to another host or scheme refused: {where}"):
        ImageFetcher(REACHABLE).fetch(server.url(path))
    assert server.paths_requested()[before:] == [path]


def test_endless_redirects_are_refused(server: ImageServer) -> None:
    with pytest.raises(ImageRedirectRefused, match="more than 3 redirects"):
        ImageFetcher(REACHABLE).fetch(server.url("/redirect-loop"))


def test_an_image_over_the_byte_cap_is_refused(server: ImageServer) -> None:
    with pytest.raises(ImageTooLarge, match=r"2097152 bytes is over images.max_bytes \(1048576\)"):
        ImageFetcher(REACHABLE).fetch(server.url("/big"))


def test_a_body_without_length_is_refused_as_soon_as_it_passes_the_cap(
    server: ImageServer,
) -> None:
    fetcher = ImageFetcher(ImagesConfig(**{**REACHABLE.__dict__, "timeout_s": 30.0}))
    with pytest.raises(ImageTooLarge, match=r"is over images.max_bytes \(1048576\); refused"):
        fetcher.fetch(server.url("/endless"))
    # The server streams up to 64 MiB; the client stopped reading just past the 1 MiB cap
    # (what it sent beyond is what the socket buffers took before it closed).
    with server.log.lock:
        sent = server.log.sent.get("/endless", 0)
    assert sent < 16 * 1024 * 1024


@pytest.mark.parametrize("path", ["/drip", "/stall"])
def test_a_slow_server_is_cut_off_at_the_total_timeout(server: ImageServer, path: str) -> None:
    fetcher = ImageFetcher(ImagesConfig(**{**REACHABLE.__dict__, "timeout_s": 0.5}))
    started = time.monotonic()
    with pytest.raises(ImageTimeout, match=r"within images.timeout_s"):
        fetcher.fetch(server.url(path))
    # /drip sends a byte every 50 ms: no single read waits long, only the total is over.
    assert time.monotonic() - started < 1.5


def test_an_http_error_status_is_refused_with_it(server: ImageServer) -> None:
    with pytest.raises(ImageFetchFailed, match=r"HTTP 404 from 127.0.0.1"):
        ImageFetcher(REACHABLE).fetch(server.url("/missing.png"))


def test_a_host_that_refuses_connections_fails_with_the_reason(server: ImageServer) -> None:
    closed = ImageServer({})  # bound, never listening on a thread, then closed
    port = closed.port
    closed.http.server_close()
    with pytest.raises(ImageFetchFailed, match=r"cannot fetch from 127.0.0.1"):
        ImageFetcher(REACHABLE).fetch(f"http://127.0.0.1:{port}/image.png")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://user:secret@127.0.0.1/image.png", "credentials"),
        ("http://user@127.0.0.1/image.png", "credentials"),
        ("s3://AKIAKEY:secret@bucket/image.png", "credentials"),
        ("s3://bucket/image.png?access_key=AKIA&secret_key=s", "must not carry a query"),
        ("gs://bucket/image.png?endpoint_override=127.0.0.1", "must not carry a query"),
        ("file://fileserver/share/image.png", "a local path, no host"),
        ("file://localhost/share/image.png", "a local path, no host"),
        ("http://127.0.0.1:99999/image.png", "not a valid URL"),
        ("http://127.0.0.1/image .png", "whitespace or control"),
        ("http://127.0.0.1/\nimage.png", "whitespace or control"),
    ],
)
def test_urls_with_credentials_or_odd_forms_are_refused(url: str, match: str) -> None:
    with pytest.raises(ImageURLRefused, match=match):
        ImageFetcher(REACHABLE).fetch(url)


def test_a_file_url_is_read_through_pyarrow_fs(tmp_path: Path) -> None:
    path = tmp_path / "pin image.png"
    path.write_bytes(IMAGE)
    assert ImageFetcher(GUARDED).fetch(path.as_uri()) == IMAGE  # percent-encoded space


def test_file_refusals_say_why(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (GUARDED.max_bytes + 1))
    with pytest.raises(ImageTooLarge, match=f"{GUARDED.max_bytes + 1} bytes is over"):
        ImageFetcher(GUARDED).fetch(big.as_uri())
    with pytest.raises(ImageFetchFailed, match="not found"):
        ImageFetcher(GUARDED).fetch((tmp_path / "missing.png").as_uri())
    with pytest.raises(ImageFetchFailed, match="not found"):
        ImageFetcher(GUARDED).fetch(tmp_path.as_uri())  # a folder is no image


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ImageServer, Path]]:
    """An HTTPS image server whose certificate names images.test, and its CA's file."""
    ca, cert, key = write_tls_files(tmp_path_factory.mktemp("tls"), "images.test")
    with image_server({"/image.png": IMAGE}, tls=(cert, key)) as running:
        yield running, ca


def test_https_goes_to_the_checked_address_and_verifies_the_urls_host(
    tls_server: tuple[ImageServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # trust the test CA (OpenSSL's default paths)
    resolver = CountingResolver({"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    url = server.url("/image.png", host="images.test")
    assert ImageFetcher(REACHABLE, resolver).fetch(url) == IMAGE  # certificate checked for it
    both = ImagesConfig(**{**REACHABLE.__dict__, "allowed_hosts": ("images.test", "other.test")})
    with pytest.raises(
        ImageFetchFailed, match=r"other\.test: hostname 'other\.test' doesn't match 'images\.test'"
    ):
        ImageFetcher(both, resolver).fetch(server.url("/image.png", host="other.test"))
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(ImageFetchFailed, match="certificate verify failed"):  # an unknown CA
        ImageFetcher(REACHABLE, resolver).fetch(url)
