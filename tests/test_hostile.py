"""Hostile input: what a feed or a server can send to make newswire attack its own
network, hang, or eat its memory, and what newswire does instead.

HTTP against real loopback servers (names that must look public resolve through
a fake ``getaddrinfo``; nothing is ever sent beyond 127.0.0.1); XML and feed
text through :func:`parse_feed`, the ones that could grow memory in a process of
their own whose peak RSS is measured.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

import newswire.http
from newswire.errors import BlockedURLError, FetchError, TransientFetchError
from newswire.http import Fetcher, _CheckedTransport
from newswire.settings import Settings
from tests.conftest import Response, Site
from tests.test_http import raw_server, read_request

MiB = 1024 * 1024
BASE = "http://127.0.0.1:8000"


@pytest.fixture
def settings() -> Settings:
    """Overrides conftest's (no Redis needed); private networks refused, as in production."""
    return Settings(allow_private_networks=False, request_timeout=5.0)


class Resolver:
    """An in-process DNS: ``answers[name]`` is the list of answers, one per lookup
    (the last one repeats); names it does not know resolve as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[tuple]:
            if host not in self.answers:
                return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
            self.lookups.append(host)
            queue = self.answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

        monkeypatch.setattr(newswire.http.socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    return Resolver(monkeypatch)


# -- SSRF ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.1", "0x7f.1", "0x7f000001", "0177.0.0.1", "2130706433", "017700000001",
        "0", "[::]", "[0:0:0:0:0:ffff:7f00:1]", "[::ffff:169.254.169.254]",
        "[fe80::1]", "169.254.169.254", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::]",
        "[fd00::1]", "localhost", "LOCALHOST",
    ],
)
def test_every_spelling_of_a_private_address_is_refused(
    site: Site, settings: Settings, host: str
) -> None:
    site.routes["/"] = Response(200, {}, b"internal")
    port = site.server.server_address[1]
    with closing(Fetcher(settings)) as fetcher, pytest.raises(BlockedURLError) as e:
        fetcher.get(f"http://{host}:{port}/", max_bytes=MiB)
    message = str(e.value)
    assert "non-public address" in message and "NEWSWIRE_ALLOW_PRIVATE_NETWORKS" in message
    assert site.requests == []


def test_the_opt_in_reaches_loopback(site: Site, settings: Settings) -> None:
    site.routes["/"] = Response(200, {}, b"internal")
    port = site.server.server_address[1]
    with closing(Fetcher(settings.with_(allow_private_networks=True))) as fetcher:
        assert fetcher.get(f"http://0x7f.1:{port}/", max_bytes=MiB).body == b"internal"


def test_dns_rebinding_cannot_reach_a_private_address(
    site: Site, settings: Settings, dns: Resolver
) -> None:
    """The first lookup (the check) says public, every later one says loopback.
    Without pinning, httpx's own lookup would connect to the loopback site."""
    site.routes["/secret"] = Response(200, {}, b"internal")
    port = site.server.server_address[1]
    dns.answers["rebind.example"] = ["93.184.216.34", "127.0.0.1"]
    with closing(Fetcher(settings)) as fetcher, pytest.raises(BlockedURLError) as e:
        fetcher.get(f"http://rebind.example:{port}/secret", max_bytes=MiB)
    assert "127.0.0.1" in str(e.value)
    assert e.value.url == f"http://rebind.example:{port}/secret"
    assert site.requests == []
    assert dns.lookups == ["rebind.example", "rebind.example"]


def test_the_connection_goes_to_the_address_looked_up_once(
    site: Site, settings: Settings, dns: Resolver
) -> None:
    """With the opt-in, the name is looked up once per connection and the Host
    header is still the URL's: the connection is pinned, the request unchanged."""
    site.routes["/"] = Response(200, {}, b"ok")
    port = site.server.server_address[1]
    dns.answers["pinned.example"] = ["127.0.0.1", "192.0.2.1"]  # TEST-NET: never reached
    with closing(Fetcher(settings.with_(allow_private_networks=True))) as fetcher:
        assert fetcher.get(f"http://pinned.example:{port}/", max_bytes=MiB).body == b"ok"
    assert dns.lookups == ["pinned.example"]
    assert site.requests[0].headers["host"] == f"pinned.example:{port}"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Self-signed certificates for pinned.example and other.example (openssl CLI)."""
    folder = tmp_path_factory.mktemp("tls")
    made = {}
    for name in ("pinned.example", "other.example"):
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext",
             f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )
        made[name] = cert
    return made


@pytest.mark.skipif(not Path("/usr/bin/openssl").exists(), reason="needs the openssl CLI")
@pytest.mark.parametrize(("served", "ok"), [("pinned.example", True), ("other.example", False)])
def test_tls_verifies_the_host_name_while_connecting_to_the_pinned_address(
    settings: Settings, dns: Resolver, certificates: dict[str, Path], served: str, ok: bool
) -> None:
    seen: dict[str, str | None] = {}
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(certificates[served], certificates[served].with_suffix(".key"))
    server_tls.sni_callback = lambda sock, name, ctx: seen.update(sni=name)  # type: ignore[assignment,misc,func-returns-value]

    def serve(conn: socket.socket) -> None:
        with server_tls.wrap_socket(conn, server_side=True) as tls:
            data = b""
            while b"\r\n\r\n" not in data:
                data += tls.recv(65536)
            seen["host"] = next(
                line.split(b":", 1)[1].strip().decode()
                for line in data.split(b"\r\n") if line.lower().startswith(b"host:")
            )
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    client_tls = ssl.create_default_context(cafile=str(certificates["pinned.example"]))
    client_tls.load_verify_locations(certificates["other.example"])  # trusted, wrong name
    dns.answers["pinned.example"] = ["127.0.0.1"]
    opted_in = settings.with_(allow_private_networks=True)
    transport = _CheckedTransport(allow_private=True, limits=httpx.Limits(), verify=client_tls)
    with raw_server(serve) as url, closing(Fetcher(opted_in, transport=transport)) as fetcher:
        port = httpx.URL(url).port
        target = f"https://pinned.example:{port}/"
        if ok:
            assert fetcher.get(target, max_bytes=MiB).body == b"ok"
            assert seen == {"sni": "pinned.example", "host": f"pinned.example:{port}"}
        else:
            with pytest.raises(TransientFetchError, match="CERTIFICATE_VERIFY_FAILED"):
                fetcher.get(target, max_bytes=MiB)
            assert seen["sni"] == "pinned.example" and "host" not in seen


def test_a_redirect_to_a_name_rebound_to_loopback_is_refused(
    site: Site, settings: Settings, dns: Resolver
) -> None:
    """Opt-in off, a first hop on loopback is refused; so the chain starts on a
    name that the check sees public and the connection sees as loopback."""
    port = site.server.server_address[1]
    dns.answers["start.example"] = ["93.184.216.34", "127.0.0.1"]
    site.routes["/start"] = Response(302, {"Location": "http://127.0.0.1/secret"})
    with closing(Fetcher(settings)) as fetcher, pytest.raises(BlockedURLError):
        fetcher.get(f"http://start.example:{port}/start", max_bytes=MiB)
    assert site.requests == []


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://ftp.example/x", "javascript:alert(1)",
                 "data:text/html,<b>x</b>", "gopher://127.0.0.1:6379/_INFO"],
)
def test_redirects_to_other_schemes_are_refused(
    site: Site, settings: Settings, location: str
) -> None:
    site.routes["/go"] = Response(302, {"Location": location})
    with closing(Fetcher(settings.with_(allow_private_networks=True))) as fetcher:
        with pytest.raises(BlockedURLError, match="non-HTTP URL|not an http"):
            fetcher.get(site.url("/go"), max_bytes=MiB)
    assert [r.path for r in site.requests] == ["/go"]


# -- size and time -------------------------------------------------------------


@pytest.fixture
def opted_in(settings: Settings) -> Iterator[Fetcher]:
    with closing(Fetcher(settings.with_(allow_private_networks=True))) as f:
        yield f


def test_only_bounded_encodings_are_asked_for(site: Site, opted_in: Fetcher) -> None:
    site.routes["/"] = Response(200, {}, b"ok")
    opted_in.get(site.url("/"), max_bytes=MiB)
    assert site.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip", "compress"])
def test_encodings_not_asked_for_are_refused(
    site: Site, opted_in: Fetcher, encoding: str
) -> None:
    # A brotli stream of 100 MiB of zeros is ~80 bytes: refused without decoding.
    site.routes["/"] = Response(200, {"Content-Encoding": encoding}, b"\x1b\xff\xff\x0f" * 20)
    with pytest.raises(FetchError, match="unsupported content encoding") as e:
        opted_in.get(site.url("/"), max_bytes=MiB)
    assert not isinstance(e.value, TransientFetchError)


def test_deflate_bomb_is_cut_off_in_bounded_memory(site: Site, opted_in: Fetcher) -> None:
    import tracemalloc

    z = zlib.compressobj(9, zlib.DEFLATED, 15)  # zlib container, as "deflate" means
    block = bytes(MiB)
    bomb = b"".join(z.compress(block) for _ in range(100)) + z.flush()
    assert len(bomb) < MiB
    site.routes["/bomb"] = Response(200, {"Content-Encoding": "deflate"}, bomb)
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="over the 1048576-byte limit"):
            opted_in.get(site.url("/bomb"), max_bytes=MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB


def test_deadline_covers_a_body_sent_a_byte_at_a_time(settings: Settings) -> None:
    client_hung_up = threading.Event()

    def serve(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):  # 10 s of body, 20 times the deadline
            try:
                conn.sendall(b"x")
            except OSError:
                client_hung_up.set()
                return
            time.sleep(0.1)  # the hostile server's pace, not synchronization

    started = time.monotonic()
    with (
        raw_server(serve) as url,
        closing(Fetcher(settings.with_(allow_private_networks=True, request_timeout=0.5)))
        as fetcher,
        pytest.raises(TransientFetchError),
    ):
        fetcher.get(url, max_bytes=MiB)
    assert client_hung_up.is_set()
    assert time.monotonic() - started < 8  # loose: the server alone would take 10 s


def test_the_deadline_does_not_outlive_its_request(site: Site, settings: Settings) -> None:
    """A kept-alive connection used again after a request timed out is not cut short."""
    site.routes["/"] = Response(200, {}, b"ok")
    with closing(Fetcher(settings.with_(allow_private_networks=True, request_timeout=0.3))) as f:
        assert f.get(site.url("/"), max_bytes=MiB).body == b"ok"
        time.sleep(0.4)  # past the first request's deadline
        assert f.get(site.url("/"), max_bytes=MiB).body == b"ok"
    assert len(site.requests) == 2
