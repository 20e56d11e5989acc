"""The HTTP adapter against real loopback servers: bodies, limits, redirects, errors, SSRF.

The ``site`` fixture answers from a table of routes; what it cannot do (no
Content-Length, chunked bodies, silence, dripping headers) a one-connection
raw socket server below does. Nothing here needs the public network: host
names that must look public resolve through a fake ``getaddrinfo``.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import newswire.http
from newswire import PROJECT_URL, __version__
from newswire.errors import (
    BlockedURLError,
    FetchError,
    HTTPStatusError,
    TooLargeError,
    TransientFetchError,
)
from newswire.http import Fetcher, _CheckedTransport, check_url, retry_after_seconds
from newswire.settings import Settings
from tests.conftest import Request, Response, Site

MiB = 1024 * 1024


@pytest.fixture
def settings() -> Settings:
    """Overrides conftest's: the HTTP adapter needs no Redis."""
    return Settings(allow_private_networks=True, request_timeout=5.0, obey_robots=False)


@pytest.fixture
def fetcher(settings: Settings) -> Iterator[Fetcher]:
    with closing(Fetcher(settings)) as f:
        yield f


@contextmanager
def raw_server(serve: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback TCP server for one connection; ``serve`` talks to the client."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)

        def run() -> None:
            try:
                conn, _ = listener.accept()
                with conn:
                    serve(conn)
            except OSError:  # the client hung up (or never came): nothing left to do
                pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
        thread.join(timeout=30)


def read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client closed before sending a request")
        data += chunk


class Drip:
    """A hostile server's answer: ``head``, then ``chunk`` ``times`` times, ``pace``
    seconds apart (the hostile server's pace, not synchronization), then ``tail``.
    ``hung_up`` is set when the client closed the connection before the end."""

    def __init__(self, head: bytes, chunk: bytes, times: int, pace: float,
                 tail: bytes = b"") -> None:
        self.head, self.chunk, self.times, self.pace, self.tail = head, chunk, times, pace, tail
        self.hung_up = threading.Event()

    def __call__(self, conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(self.head)
        for _ in range(self.times):
            try:
                conn.sendall(self.chunk)
            except OSError:
                self.hung_up.set()
                return
            time.sleep(self.pace)
        conn.sendall(self.tail)


def gzip_of_zeros(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes, built without holding them all."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    block = bytes(MiB)
    return b"".join(z.compress(block) for _ in range(size // MiB)) + z.flush()


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return gzip_of_zeros(100 * MiB)


# -- success -------------------------------------------------------------------


def test_200_gives_body_and_lowercased_headers(site: Site, fetcher: Fetcher) -> None:
    site.routes["/feed"] = Response(
        200, {"Content-Type": "application/rss+xml", "ETag": '"v1"'}, b"<rss/>"
    )
    response = fetcher.get(site.url("/feed"), max_bytes=MiB)
    assert response.status == 200
    assert response.body == b"<rss/>"
    assert response.headers["etag"] == '"v1"'
    assert response.content_type == "application/rss+xml"
    assert response.url == site.url("/feed")
    assert response.permanent_url is None


def test_304_comes_back_as_a_response(site: Site, fetcher: Fetcher) -> None:
    def conditional(request: Request) -> Response:
        if request.headers.get("if-none-match") == '"v1"':
            return Response(304, {"ETag": '"v1"'})
        return Response(200, {"ETag": '"v1"'}, b"<rss/>")

    site.routes["/feed"] = conditional
    response = fetcher.get(site.url("/feed"), max_bytes=MiB, headers={"If-None-Match": '"v1"'})
    assert response.status == 304
    assert response.body == b""
    assert site.hits("/feed")[0].headers["if-none-match"] == '"v1"'


def test_user_agent_and_accept(site: Site, fetcher: Fetcher) -> None:
    site.routes["/"] = Response(200, {}, b"ok")
    fetcher.get(site.url("/"), max_bytes=MiB, accept="application/rss+xml")
    headers = site.requests[0].headers
    assert headers["user-agent"] == f"newswire/{__version__} (+{PROJECT_URL})"
    assert re.fullmatch(r"newswire/\d+\.\d+\S* \(\+https://\S+\)", headers["user-agent"])
    assert headers["accept"] == "application/rss+xml"


def test_connections_are_kept_per_origin_and_dropped_once_expired(settings: Settings) -> None:
    """One pool per origin: each origin's connection is reused while it is used, and the
    pool of an origin left unused for longer than the keep-alive expiry is closed."""
    sites = [Site("127.0.0.1"), Site("127.0.0.2")]
    transport = _CheckedTransport(allow_private=True, limits=httpx.Limits(keepalive_expiry=0.3))
    try:
        with closing(Fetcher(settings, transport=transport)) as fetcher:
            for s in sites:
                s.routes["/feed"] = Response(200, {}, b"ok")
            for _ in range(3):
                for s in sites:
                    assert fetcher.get(s.url("/feed"), max_bytes=MiB).body == b"ok"
            assert sorted(transport.pools.connections().values()) == [1, 1]
            time.sleep(0.5)
            assert fetcher.get(sites[1].url("/feed"), max_bytes=MiB).body == b"ok"
            assert [host for _, host, _ in transport.pools.connections()] == [b"127.0.0.2"]
    finally:
        for s in sites:
            s.close()


# -- size limits ---------------------------------------------------------------


def test_body_at_the_limit_passes_and_one_byte_more_does_not(
    site: Site, fetcher: Fetcher
) -> None:
    site.routes["/exact"] = Response(200, {}, b"x" * 1000)
    site.routes["/over"] = Response(200, {}, b"x" * 1001)
    assert len(fetcher.get(site.url("/exact"), max_bytes=1000).body) == 1000
    with pytest.raises(TooLargeError):
        fetcher.get(site.url("/over"), max_bytes=1000)


def test_declared_length_over_the_limit_is_refused_before_reading(fetcher: Fetcher) -> None:
    def serve(conn: socket.socket) -> None:
        read_request(conn)
        # Declares 50 MiB and sends none of it: only the declaration can fail fast
        # (otherwise the client waits for the body and times out).
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 52428800\r\n\r\n")
        conn.recv(1)

    with raw_server(serve) as url, pytest.raises(TooLargeError):
        fetcher.get(url, max_bytes=MiB)


@pytest.mark.parametrize("framing", ["close-delimited", "chunked"])
def test_undeclared_body_over_the_limit_is_cut_off(fetcher: Fetcher, framing: str) -> None:
    sent = 0

    def serve(conn: socket.socket) -> None:
        nonlocal sent
        read_request(conn)
        header = "Transfer-Encoding: chunked" if framing == "chunked" else "Connection: close"
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{header}\r\n\r\n".encode())
        chunk = b"x" * 65536
        frame = b"10000\r\n" + chunk + b"\r\n" if framing == "chunked" else chunk
        while sent < 50 * MiB:
            conn.sendall(frame)
            sent += len(chunk)

    tracemalloc.start()
    try:
        with raw_server(serve) as url, pytest.raises(TooLargeError):
            fetcher.get(url, max_bytes=MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sent < 50 * MiB  # the client hung up long before the end
    assert peak < 16 * MiB


def test_gzip_bomb_is_cut_off(site: Site, fetcher: Fetcher, gzip_bomb: bytes) -> None:
    site.routes["/bomb"] = Response(200, {"Content-Encoding": "gzip"}, gzip_bomb)
    assert len(gzip_bomb) < MiB  # so that the declared length lets it through
    with pytest.raises(TooLargeError):
        fetcher.get(site.url("/bomb"), max_bytes=MiB)


def test_gzip_bomb_memory_stays_near_the_limit(
    site: Site, fetcher: Fetcher, gzip_bomb: bytes
) -> None:
    site.routes["/bomb"] = Response(200, {"Content-Encoding": "gzip"}, gzip_bomb)
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeError):
            fetcher.get(site.url("/bomb"), max_bytes=MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB


# -- redirects -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "moved_to"),
    [
        ((301,), "/1"),
        ((301, 308, 301), "/3"),
        ((302,), None),
        ((307,), None),
        ((302, 301), None),
        # RFC 9110 15.4.2: the resource moved for good to /1, which now redirects
        # temporarily; the temporary hop is not followed into the stored URL.
        ((301, 302), "/1"),
    ],
)
def test_permanent_url_is_where_the_leading_permanent_redirects_lead(
    site: Site, fetcher: Fetcher, statuses: tuple[int, ...], moved_to: str | None
) -> None:
    for i, status in enumerate(statuses):
        site.routes[f"/{i}"] = Response(status, {"Location": f"/{i + 1}"})
    final = f"/{len(statuses)}"
    site.routes[final] = Response(200, {}, b"here")
    response = fetcher.get(site.url("/0"), max_bytes=MiB)
    assert (response.status, response.body, response.url) == (200, b"here", site.url(final))
    assert response.permanent_url == (site.url(moved_to) if moved_to else None)


def test_a_cookie_set_by_a_redirect_is_sent_on_its_next_hops_only(
    site: Site, fetcher: Fetcher
) -> None:
    """A consent or cookie-check redirect works; the cookie is not kept for later gets."""
    site.routes["/check"] = Response(302, {"Location": "/story", "Set-Cookie": "seen=1; Path=/"})

    def story(request: Request) -> Response:
        if request.headers.get("cookie") == "seen=1":
            return Response(200, {}, b"the story")
        return Response(302, {"Location": "/check"})

    site.routes["/story"] = story
    assert fetcher.get(site.url("/check"), max_bytes=MiB).body == b"the story"
    assert fetcher.get(site.url("/story"), max_bytes=MiB).body == b"the story"
    assert [r.headers.get("cookie") for r in site.hits("/story")] == ["seen=1", None, "seen=1"]


def test_redirect_to_itself_is_a_loop(site: Site, fetcher: Fetcher) -> None:
    site.routes["/loop"] = Response(301, {"Location": "/loop"})
    with pytest.raises(FetchError, match="loop") as e:
        fetcher.get(site.url("/loop"), max_bytes=MiB)
    assert not isinstance(e.value, TransientFetchError)


def test_redirect_cycle_stops_at_max_redirects(
    site: Site, fetcher: Fetcher, settings: Settings
) -> None:
    site.routes["/a"] = Response(302, {"Location": "/b"})
    site.routes["/b"] = Response(302, {"Location": "/a"})
    with pytest.raises(FetchError, match="too many redirects") as e:
        fetcher.get(site.url("/a"), max_bytes=MiB)
    assert not isinstance(e.value, TransientFetchError)
    assert len(site.requests) == settings.max_redirects + 1


@pytest.mark.parametrize(("redirects", "ok"), [(5, True), (6, False)])
def test_max_redirects(site: Site, fetcher: Fetcher, redirects: int, ok: bool) -> None:
    assert fetcher.settings.max_redirects == 5
    for i in range(redirects):
        site.routes[f"/{i}"] = Response(302, {"Location": f"/{i + 1}"})
    site.routes[f"/{redirects}"] = Response(200, {}, b"end")
    if ok:
        assert fetcher.get(site.url("/0"), max_bytes=MiB).body == b"end"
    else:
        with pytest.raises(FetchError, match="too many redirects"):
            fetcher.get(site.url("/0"), max_bytes=MiB)


def test_redirect_without_location_raises(site: Site, fetcher: Fetcher) -> None:
    site.routes["/moved"] = Response(301, {}, b"")
    with pytest.raises(FetchError):
        fetcher.get(site.url("/moved"), max_bytes=MiB)


# -- error statuses and transport failures -------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_statuses_carry_retry_after_seconds(
    site: Site, fetcher: Fetcher, status: int
) -> None:
    site.routes["/busy"] = Response(status, {"Retry-After": "120"}, b"busy")
    with pytest.raises(TransientFetchError) as e:
        fetcher.get(site.url("/busy"), max_bytes=MiB)
    assert (e.value.status, e.value.retry_after) == (status, 120.0)


def test_retry_after_as_http_date(site: Site, fetcher: Fetcher) -> None:
    in_an_hour = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    site.routes["/busy"] = Response(503, {"Retry-After": in_an_hour})
    with pytest.raises(TransientFetchError) as e:
        fetcher.get(site.url("/busy"), max_bytes=MiB)
    assert e.value.retry_after is not None
    assert 3000 < e.value.retry_after <= 3600


def test_odd_retry_after_still_gives_a_transient_error(site: Site, fetcher: Fetcher) -> None:
    site.routes["/busy"] = Response(503, {"Retry-After": "\N{SUPERSCRIPT TWO}"})
    with pytest.raises(TransientFetchError) as e:
        fetcher.get(site.url("/busy"), max_bytes=MiB)
    assert e.value.retry_after is None


@pytest.mark.parametrize("status", [404, 410])
def test_client_errors_are_not_transient(site: Site, fetcher: Fetcher, status: int) -> None:
    site.routes["/gone"] = Response(status, {}, b"no")
    with pytest.raises(HTTPStatusError) as e:
        fetcher.get(site.url("/gone"), max_bytes=MiB)
    assert e.value.status == status
    assert not isinstance(e.value, TransientFetchError)


def test_silent_server_times_out(settings: Settings) -> None:
    def serve(conn: socket.socket) -> None:
        read_request(conn)
        conn.recv(1)  # answers nothing; returns once the client hangs up

    started = time.monotonic()
    with (
        raw_server(serve) as url,
        closing(Fetcher(settings.with_(request_timeout=1.0))) as fetcher,
        pytest.raises(TransientFetchError),
    ):
        fetcher.get(url, max_bytes=MiB)
    assert time.monotonic() - started < 10


def test_deadline_covers_a_server_dripping_headers(settings: Settings) -> None:
    # 4 s of headers, 8 times the deadline.
    serve = Drip(b"HTTP/1.1 200 OK\r\n", b"X-Drip: 1\r\n", 20, 0.2,
                 tail=b"Content-Length: 2\r\n\r\nok")
    with (
        raw_server(serve) as url,
        closing(Fetcher(settings.with_(request_timeout=0.5))) as fetcher,
        pytest.raises(TransientFetchError),
    ):
        fetcher.get(url, max_bytes=MiB)
    assert serve.hung_up.is_set()


def test_refused_connection_is_transient(fetcher: Fetcher) -> None:
    with socket.socket() as s:  # bound, never listening: connecting is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(TransientFetchError):
            fetcher.get(f"http://127.0.0.1:{port}/", max_bytes=MiB)


# -- SSRF ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://0.0.0.0:{port}/",
        "http://2130706433:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://0.0.0.0/",
    ],
)
def test_private_addresses_are_refused_before_any_request(
    site: Site, settings: Settings, template: str
) -> None:
    site.routes["/"] = Response(200, {}, b"internal")
    url = template.format(port=site.server.server_address[1])
    with (
        closing(Fetcher(settings.with_(allow_private_networks=False))) as fetcher,
        pytest.raises(BlockedURLError),
    ):
        fetcher.get(url, max_bytes=MiB)
    assert site.requests == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x/", "javascript:alert(1)"])
def test_non_http_schemes_are_refused(fetcher: Fetcher, url: str) -> None:
    assert fetcher.settings.allow_private_networks  # refused even so
    with pytest.raises(BlockedURLError):
        fetcher.get(url, max_bytes=MiB)


FAKE_DNS = {
    "public.example": ["93.184.216.34"],
    "evil.example": ["127.0.0.1"],
    "mixed.example": ["93.184.216.34", "10.0.0.1"],
    "nowhere.example": [],
}


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolves the names of FAKE_DNS, and every other name as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        if host not in FAKE_DNS:
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        if not FAKE_DNS[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port))
            for a in FAKE_DNS[host]
        ]

    monkeypatch.setattr(newswire.http.socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("fake_dns")
def test_check_url_resolves_names() -> None:
    check_url("http://public.example/feed", allow_private=False)
    for url in ("http://evil.example/", "https://mixed.example/"):
        with pytest.raises(BlockedURLError):
            check_url(url, allow_private=False)
    with pytest.raises(TransientFetchError):
        check_url("http://nowhere.example/", allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fc00::1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
    ],
)
def test_check_url_refuses_non_public_addresses(url: str) -> None:
    with pytest.raises(BlockedURLError):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)  # the opt-in lets them through


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://x/", "javascript:alert(1)", "http:///no-host",
     "http://example.com:99999/"],
)
def test_check_url_refuses_bad_urls_even_with_private_allowed(url: str) -> None:
    with pytest.raises(BlockedURLError):
        check_url(url, allow_private=True)


class ToSite(httpx.HTTPTransport):
    """Carries requests for ``public.example`` to the loopback site, so that a
    redirect chain can start at a "public" URL without leaving the machine."""

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = httpx.URL(site.base)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "public.example":
            request.url = request.url.copy_with(host=self.site.host, port=self.site.port)
        return super().handle_request(request)


@pytest.mark.usefixtures("fake_dns")
@pytest.mark.parametrize(("target", "blocked"), [
    ("http://public.example/ok", False),
    ("http://evil.example/secret", True),
    ("http://127.0.0.1:{port}/secret", True),
])
def test_every_redirect_hop_is_checked(
    site: Site, settings: Settings, target: str, blocked: bool
) -> None:
    site.routes["/start"] = Response(
        302, {"Location": target.format(port=site.server.server_address[1])}
    )
    site.routes["/ok"] = site.routes["/secret"] = Response(200, {}, b"reached")
    private_refused = settings.with_(allow_private_networks=False)
    with closing(Fetcher(private_refused, transport=ToSite(site))) as fetcher:
        if blocked:
            with pytest.raises(BlockedURLError):
                fetcher.get("http://public.example/start", max_bytes=MiB)
        else:
            assert fetcher.get("http://public.example/start", max_bytes=MiB).body == b"reached"
    assert len(site.hits("/start")) == 1
    assert site.hits("/secret") == []


# -- Retry-After ---------------------------------------------------------------

NOW = datetime(2015, 10, 21, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("999999", 86400.0),  # capped at a day
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1680.0),
        ("Wed Oct 21 07:28:00 2015", 1680.0),  # asctime form, GMT by definition
        ("Wed, 21 Oct 2015 06:00:00 GMT", 0.0),  # in the past: now
        ("Fri, 01 Jan 2016 00:00:00 GMT", 86400.0),  # far future: capped
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
        ("\N{SUPERSCRIPT TWO}", None),  # str.isdigit() accepts it, float() does not
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == expected
