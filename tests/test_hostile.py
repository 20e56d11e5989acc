"""Hostile input: what a feed or a server can send to make newswire attack its own
network, hang, or eat its memory, and what newswire does instead.

HTTP against real loopback servers, TLS with certificates made by the openssl
command (names that must look public resolve through an in-process resolver that
patches ``getaddrinfo``; nothing is ever sent beyond loopback); XML and feed text
through :func:`parse_feed`, the cases that could grow memory in a process of their
own whose peak RSS (VmHWM) is measured; then end to end through the scheduler and
the worker against the test Redis.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import redis

import newswire.http
from newswire.clean import clean_page
from newswire.errors import BlockedURLError, FetchError, ParseError, TransientFetchError
from newswire.feeds import parse_feed
from newswire.http import Fetcher, _CheckedTransport
from newswire.model import FeedEntry
from newswire.settings import Settings
from newswire.urls import canonicalize
from scheduler.service import Scheduler
from tests.conftest import Response, Site, queued_entries, write_feeds
from tests.test_http import Drip, raw_server, read_request
from tests.test_worker import article_page, run_jobs, stored, work
from worker.runtime import Runtime, install

MiB = 1024 * 1024
BASE = "http://127.0.0.1:8000"
T0 = 1_740_000_000.0  # a fixed 'now' for the scheduler


@pytest.fixture
def strict() -> Settings:
    """For the HTTP tests (no Redis needed): private networks refused, as in production."""
    # robots.txt off: these tests count the transport's lookups and requests.
    return Settings(allow_private_networks=False, request_timeout=5.0, obey_robots=False)


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
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
        "[fd00::1]", "localhost", "LOCALHOST",
        "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",  # fullwidth: IDNA folds it
        "127\u30020\u30020\u30021",  # ideographic full stops: IDNA reads them as dots
    ],
)
def test_every_spelling_of_a_private_address_is_refused(
    site: Site, strict: Settings, host: str
) -> None:
    site.routes["/"] = Response(200, {}, b"internal")
    port = site.server.server_address[1]
    with closing(Fetcher(strict)) as fetcher, pytest.raises(BlockedURLError) as e:
        fetcher.get(f"http://{host}:{port}/", max_bytes=MiB)
    message = str(e.value)
    assert "non-public address" in message and "NEWSWIRE_ALLOW_PRIVATE_NETWORKS" in message
    assert site.requests == []


def test_the_opt_in_reaches_loopback(site: Site, strict: Settings) -> None:
    site.routes["/"] = Response(200, {}, b"internal")
    port = site.server.server_address[1]
    with closing(Fetcher(strict.with_(allow_private_networks=True))) as fetcher:
        assert fetcher.get(f"http://0x7f.1:{port}/", max_bytes=MiB).body == b"internal"


def test_dns_rebinding_cannot_reach_a_private_address(
    site: Site, strict: Settings, dns: Resolver
) -> None:
    """The first lookup (the check) says public, every later one says loopback.
    Without pinning, httpx's own lookup would connect to the loopback site."""
    site.routes["/secret"] = Response(200, {}, b"internal")
    port = site.server.server_address[1]
    dns.answers["rebind.example"] = ["93.184.216.34", "127.0.0.1"]
    with closing(Fetcher(strict)) as fetcher, pytest.raises(BlockedURLError) as e:
        fetcher.get(f"http://rebind.example:{port}/secret", max_bytes=MiB)
    assert "127.0.0.1" in str(e.value)
    assert e.value.url == f"http://rebind.example:{port}/secret"
    assert site.requests == []
    assert dns.lookups == ["rebind.example", "rebind.example"]


def test_the_connection_goes_to_the_address_looked_up_once(
    site: Site, strict: Settings, dns: Resolver
) -> None:
    """With the opt-in, the name is looked up once per connection and the Host
    header is still the URL's: the connection is pinned, the request unchanged."""
    site.routes["/"] = Response(200, {}, b"ok")
    port = site.server.server_address[1]
    dns.answers["pinned.example"] = ["127.0.0.1", "127.0.0.2"]  # a second lookup: .2
    with closing(Fetcher(strict.with_(allow_private_networks=True))) as fetcher:
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
@pytest.mark.parametrize("trusted_by", ["context", "SSL_CERT_FILE"])
def test_tls_verifies_the_host_name_while_connecting_to_the_pinned_address(
    strict: Settings, dns: Resolver, certificates: dict[str, Path], served: str, ok: bool,
    trusted_by: str, monkeypatch: pytest.MonkeyPatch,
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

    dns.answers["pinned.example"] = ["127.0.0.1"]
    opted_in = strict.with_(allow_private_networks=True)
    if trusted_by == "context":
        client_tls = ssl.create_default_context(cafile=str(certificates["pinned.example"]))
        client_tls.load_verify_locations(certificates["other.example"])  # trusted, wrong name
        transport: _CheckedTransport | None = _CheckedTransport(
            allow_private=True, limits=httpx.Limits(), verify=client_tls)
    else:  # the default transport, which honours SSL_CERT_FILE as httpx does
        monkeypatch.setenv("SSL_CERT_FILE", str(certificates["pinned.example"]))
        transport = None
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
    site: Site, strict: Settings, dns: Resolver
) -> None:
    """Opt-in off, a first hop on loopback is refused; so the chain starts on a
    name that the check sees public and the connection sees as loopback."""
    port = site.server.server_address[1]
    dns.answers["start.example"] = ["93.184.216.34", "127.0.0.1"]
    site.routes["/start"] = Response(302, {"Location": "http://127.0.0.1/secret"})
    with closing(Fetcher(strict)) as fetcher, pytest.raises(BlockedURLError):
        fetcher.get(f"http://start.example:{port}/start", max_bytes=MiB)
    assert site.requests == []


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://ftp.example/x", "javascript:alert(1)",
                 "data:text/html,<b>x</b>", "gopher://127.0.0.1:6379/_INFO"],
)
def test_redirects_to_other_schemes_are_refused(
    site: Site, strict: Settings, location: str
) -> None:
    site.routes["/go"] = Response(302, {"Location": location})
    with closing(Fetcher(strict.with_(allow_private_networks=True))) as fetcher:
        with pytest.raises(BlockedURLError, match="non-HTTP URL|not an http"):
            fetcher.get(site.url("/go"), max_bytes=MiB)
    assert [r.path for r in site.requests] == ["/go"]


# -- size and time -------------------------------------------------------------


@pytest.fixture
def opted_in(strict: Settings) -> Iterator[Fetcher]:
    with closing(Fetcher(strict.with_(allow_private_networks=True))) as f:
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


def test_deadline_covers_a_body_sent_a_byte_at_a_time(strict: Settings) -> None:
    # 10 s of body, 20 times the deadline.
    serve = Drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"x", 100, 0.1)
    started = time.monotonic()
    with (
        raw_server(serve) as url,
        closing(Fetcher(strict.with_(allow_private_networks=True, request_timeout=0.5)))
        as fetcher,
        pytest.raises(TransientFetchError),
    ):
        fetcher.get(url, max_bytes=MiB)
    assert serve.hung_up.is_set()
    assert time.monotonic() - started < 8  # loose: the server alone would take 10 s


def test_endless_headers_are_cut_off(strict: Settings) -> None:
    sent = 0

    def serve(conn: socket.socket) -> None:
        nonlocal sent
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        line = b"X-Filler: " + b"y" * 1000 + b"\r\n"
        while sent < 100 * MiB:
            conn.sendall(line)
            sent += len(line)

    with (
        raw_server(serve) as url,
        closing(Fetcher(strict.with_(allow_private_networks=True))) as fetcher,
        pytest.raises(TransientFetchError, match="RemoteProtocolError"),
    ):
        fetcher.get(url, max_bytes=MiB)
    assert sent < 10 * MiB  # httpcore has h11 stop reading headers past 100 KiB


def test_the_deadline_covers_a_name_lookup_that_hangs(
    strict: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resolver that does not answer (a hostile domain's name server can stall)
    holds the request no longer than its deadline."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[tuple]:
        if host == "stalling.example":
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "gave up")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(newswire.http.socket, "getaddrinfo", getaddrinfo)
    started = time.monotonic()
    try:
        with (
            closing(Fetcher(strict.with_(request_timeout=0.5))) as fetcher,
            pytest.raises(TransientFetchError, match="outlived the request's deadline"),
        ):
            fetcher.get("http://stalling.example/feed", max_bytes=MiB)
        waited = time.monotonic() - started
    finally:
        release.set()  # lets the lookup thread go
    assert waited < 5  # loose: the lookup alone would take 30 s


def test_the_deadline_does_not_outlive_its_request(site: Site, strict: Settings) -> None:
    """A kept-alive connection used again after a request timed out is not cut short."""
    site.routes["/"] = Response(200, {}, b"ok")
    with closing(Fetcher(strict.with_(allow_private_networks=True, request_timeout=0.3))) as f:
        assert f.get(site.url("/"), max_bytes=MiB).body == b"ok"
        time.sleep(0.4)  # past the first request's deadline
        assert f.get(site.url("/"), max_bytes=MiB).body == b"ok"
    assert len(site.requests) == 2


# -- XML -----------------------------------------------------------------------

ITEM = b"<item><title>t</title><link>https://x.example/a</link></item>"


def rss(items: bytes = ITEM, *, prolog: bytes = b"", title: bytes = b"t") -> bytes:
    return (b'<?xml version="1.0" encoding="utf-8"?>\n' + prolog
            + b'\n<rss version="2.0"><channel><title>' + title + b"</title>"
            + items + b"</channel></rss>")


def laughs() -> bytes:
    """Ten levels of ten: a 1 KB document expanding to 3 GB of "lol"."""
    levels = [b'<!ENTITY l0 "lollollollollollollollollollol">']
    levels += [b"<!ENTITY l%d \"%s\">" % (n, b"&l%d;" % (n - 1) * 10) for n in range(1, 10)]
    return rss(ITEM.replace(b">t<", b">&l9;<"), prolog=b"<!DOCTYPE rss [\n"
               + b"\n".join(levels) + b"\n]>")


def quadratic() -> bytes:
    """One 200 KB entity, on a line of its own (feedparser's fallback parser expands
    such "safe" entities itself), used a million times: 3 MB expanding to 200 GB."""
    return rss(ITEM.replace(b">t<", b">" + b"&a;" * 1_000_000 + b"<"),
               prolog=b'<!DOCTYPE rss [\n<!ENTITY a "' + b"x" * 200_000 + b'">\n]>')


@pytest.mark.parametrize(
    ("prolog", "name"),
    [
        (b'<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "x"),
        (b'<!DOCTYPE rss [<!ENTITY x SYSTEM "http://127.0.0.1:9/secret">]>', "x"),
        (b'<!DOCTYPE rss [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>', "p"),
        (b'<!DOCTYPE rss [<!ENTITY x "harmless">]>', "x"),
        # A comment that looks like an element start, to fool a scan by regex.
        (b'<!DOCTYPE rss [ <!-- <x --> <!ENTITY y "z"> ]>', "y"),
        (b'<!DOCTYPE rss [\n<!ENTITY y "z">\n<!ELEMENT', "y"),  # ill-formed after it
        (b'<!DOCTYPE rss [\n<!ELEMENT\n<!ENTITY y "z">', "?"),  # ill-formed before it
    ],
)
def test_any_entity_declaration_refuses_the_feed(prolog: bytes, name: str) -> None:
    body = rss(ITEM.replace(b">t<", b">&" + name.encode() + b";<") if name != "?" else ITEM,
               prolog=prolog)
    with pytest.raises(ParseError, match=r"declares XML entities \(" + re.escape(name)):
        parse_feed(body, feed="x", url=BASE)


@pytest.mark.parametrize("make", [laughs, quadratic])
def test_entity_bombs_are_refused(make: Callable[[], bytes]) -> None:
    with pytest.raises(ParseError, match="declares XML entities"):
        parse_feed(make(), feed="x", url=BASE)


def test_a_doctype_without_entities_and_entity_text_in_cdata_are_fine() -> None:
    netscape = (b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
                b'"http://my.netscape.com/publish/formats/rss-0.91.dtd">')
    item = (b"<item><title>On XML</title><link>https://x.example/a</link><description>"
            b'<![CDATA[Never allow <!ENTITY x SYSTEM "file:///etc/passwd"> in input.]]>'
            b"</description></item>")
    parsed = parse_feed(rss(item, prolog=netscape), feed="x", url=BASE)
    assert [e.title for e in parsed.entries] == ["On XML"]
    assert "!ENTITY x SYSTEM" in parsed.entries[0].summary


needs_proc = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="measures memory through /proc"
)


def measure(tmp_path: Path, body: bytes) -> dict[str, object]:
    """Parse ``body`` with parse_feed in a process of its own, address space capped
    at 1 GiB (a regression fails there instead of eating the machine); gives what
    came out and how far the peak RSS rose over its peak after imports.

    The peak is ``VmHWM``, the high-water mark of the process's own memory:
    ``ru_maxrss`` would carry over pytest's own peak, which Linux keeps across exec.
    """
    (tmp_path / "feed.xml").write_bytes(body)
    script = textwrap.dedent(f"""
        import json, re, resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from pathlib import Path
        from newswire.errors import ParseError
        from newswire.feeds import parse_feed

        def peak_kib():
            status = Path("/proc/self/status").read_text()
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", status)[1])

        body = Path({str(tmp_path / 'feed.xml')!r}).read_bytes()
        before = peak_kib()
        try:
            parsed = parse_feed(body, feed="x", url="http://x.example/")
            out = {{"entries": len(parsed.entries), "skipped": list(parsed.skipped),
                    "titles": [e.title for e in parsed.entries[:3]]}}
        except ParseError as e:
            out = {{"error": str(e)}}
        out["before_mib"] = before / 1024
        out["growth_mib"] = (peak_kib() - before) / 1024
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


@needs_proc
@pytest.mark.parametrize("make", [laughs, quadratic])
def test_entity_bombs_cost_no_memory(tmp_path: Path, make: Callable[[], bytes]) -> None:
    result = measure(tmp_path, make())
    assert "declares XML entities" in str(result["error"])
    # The quadratic document is 3 MB (read twice: as bytes and as UTF-8); its
    # expansion would be gigabytes (feedparser alone dies of MemoryError here).
    assert float(result["growth_mib"]) < 32, result  # type: ignore[arg-type]


@needs_proc
def test_a_ten_thousand_entry_feed_is_read_in_bounded_memory(tmp_path: Path) -> None:
    items = b"".join(b"<item><title>Story %d</title><link>https://x.example/s/%d</link>"
                     b"</item>" % (i, i) for i in range(10_000))
    result = measure(tmp_path, rss(items))
    assert result["entries"] == 10_000 and result["skipped"] == []
    assert result["titles"] == ["Story 0", "Story 1", "Story 2"]  # in document order
    assert float(result["growth_mib"]) < 64, result  # type: ignore[arg-type]


@needs_proc
def test_a_one_megabyte_title_is_cut_to_the_cap(tmp_path: Path) -> None:
    title = b"word " * 200_000
    result = measure(tmp_path, rss(ITEM.replace(b">t<", b">" + title + b"<"), title=title))
    (stored,) = result["titles"]  # type: ignore[misc]
    assert 990 <= len(stored) <= 1000 and stored.startswith("word word")
    assert float(result["growth_mib"]) < 32, result  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        rss(ITEM)[:60],  # cut off mid-document, no entry reached
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40,
        b"\xff\xfe" + "<rss>".encode("utf-16-le") + b"\x00\xd8" * 50,  # UTF-16, broken
        b"<html><head><title>Just a page</title></head><body>Hi</body></html>",
        b"{\"items\": []}",
    ],
)
def test_malformed_and_binary_feeds_are_clear_errors(body: bytes) -> None:
    with pytest.raises(ParseError) as e:
        parse_feed(body, feed="x", url=BASE)
    assert "\n" not in str(e.value) and str(e.value)


# -- text ----------------------------------------------------------------------


def storable(text: str) -> bool:
    """Encodable as UTF-8 (what Redis gets) and free of NULs and C0 controls."""
    text.encode("utf-8")
    return not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)


@pytest.mark.parametrize(
    "title",
    [
        b"Lone &#55296; surrogate &#xDFFF; refs",  # expat refuses, the fallback crashed
        b"Past the last code point &#x110000; and &#99999999;",
        b"NUL \x00 and \x01 controls &#1; &#0; inside",
        b"Caf\xe9 in Latin-1 inside a UTF-8 feed, then caf\xc3\xa9",
        b"\xed\xa0\x80 encoded surrogate bytes",
    ],
)
def test_bad_characters_never_reach_storage(title: bytes) -> None:
    parsed = parse_feed(rss(ITEM.replace(b">t<", b">" + title + b"<"), title=title),
                        feed="x", url=BASE)
    (entry,) = parsed.entries
    for text in (entry.title, entry.guid, entry.link, parsed.title):
        assert storable(text), text
    assert title.split()[0].decode("ascii", "ignore") in entry.title


def test_mixed_encodings_in_one_feed_are_stored_as_utf8() -> None:
    # Declared windows-1251; one title is really UTF-8 (a common CMS fault).
    body = rss(b"<item><title>" + "Новости".encode("cp1251") + b"</title>"
               b"<link>https://x.example/a</link></item>"
               b"<item><title>" + "Новости".encode() + b"</title>"
               b"<link>https://x.example/b</link></item>").replace(b"utf-8", b"windows-1251", 1)
    parsed = parse_feed(body, feed="x", url=BASE, content_type="application/rss+xml")
    assert parsed.entries[0].title == "Новости"
    assert all(storable(e.title) for e in parsed.entries)


# -- links ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    ["file:///etc/passwd", "ftp://ftp.example/story", "javascript:alert(document.cookie)",
     "data:text/html;base64,PHNjcmlwdD4=", "gopher://127.0.0.1:6379/_FLUSHALL",
     "mailto:desk@x.example", "JaVaScRiPt:alert(1)"],
)
def test_entry_links_with_other_schemes_are_skipped_with_a_reason(link: str) -> None:
    items = ITEM + b"<item><title>bad</title><link>" + link.encode() + b"</link></item>"
    parsed = parse_feed(rss(items), feed="x", url=BASE)
    assert [e.link for e in parsed.entries] == ["https://x.example/a"]
    (reason,) = parsed.skipped
    assert reason.startswith("entry 'bad': ")


def test_reasons_for_many_skipped_entries_stay_few() -> None:
    bad = b"".join(b"<item><title>b%d</title><link>javascript:x()</link></item>" % i
                   for i in range(500))
    parsed = parse_feed(rss(ITEM + bad), feed="x", url=BASE)
    assert len(parsed.entries) == 1
    assert len(parsed.skipped) == 21
    assert parsed.skipped[-1] == "480 more entries without a usable link"


# -- end to end: the scheduler and the worker against Redis --------------------


def test_hostile_feeds_are_recorded_and_do_not_stop_the_others(
    site: Site, settings: Settings, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    items = b"".join(b"<item><title>S%d</title><link>%s/s/%d</link></item>"
                     % (i, site.base.encode(), i) for i in range(10_000))
    one = b"<item><title>%s</title><link>" + site.base.encode() + b"/%s</link></item>"
    bodies = {
        "good": rss(one % (b"Fine", b"fine")),
        "laughs": laughs(),
        "surrogate": rss(one % (b"Bad &#55296; ref", b"bad-ref")),
        "binary": bytes(range(256)) * 64,
        "huge": rss(items),
    }
    for name, body in bodies.items():
        site.routes[f"/{name}"] = Response(
            200, {"Content-Type": "application/rss+xml", "ETag": f'"{name}-1"'}, body)
    write_feeds(settings.feeds_path, {name: site.url(f"/{name}") for name in bodies})
    caplog.set_level(logging.INFO, logger="newswire.scheduler")
    sched = Scheduler(settings, client)
    try:
        first = sched.tick(T0)
        # A day later every feed is due again; the huge feed's next thousand comes.
        second = sched.tick(T0 + 86_400)
    finally:
        sched.close()
    assert first.polled == 5
    assert set(first.errors) == {"laughs", "binary"}
    assert "declares XML entities" in first.errors["laughs"]
    assert first.enqueued == 1 + 1 + 1000  # good, surrogate, and the huge feed's first 1000
    for name in ("laughs", "binary"):
        assert sched.store.feed_state(name)["last_error"] == first.errors[name]
    assert ("feed huge: 9000 more new entries wait for the next poll "
            "(NEWSWIRE_FEED_MAX_ENTRIES=1000)" in caplog.messages)
    assert second.enqueued == 1000
    queued = queued_entries(sched.queue)
    assert len(queued) == 2002
    links = {entry["link"] for entry in queued}
    assert {f"{site.base}/s/{i}" for i in range(2000)} <= links  # in document order
    assert f"{site.base}/s/2000" not in links
    hits = site.hits("/huge")
    # Read again in full: the thousand that waited must not meet a 304.
    assert "if-none-match" not in hits[1].headers
    assert site.hits("/good")[1].headers["if-none-match"] == '"good-1"'


def test_a_feed_on_the_metadata_address_is_refused_and_its_reason_kept(
    settings: Settings, client: redis.Redis
) -> None:
    strict_settings = settings.with_(allow_private_networks=False)
    write_feeds(strict_settings.feeds_path, {"meta": "http://169.254.169.254/latest/meta-data"})
    sched = Scheduler(strict_settings, client)
    try:
        report = sched.tick(T0)
    finally:
        sched.close()
    assert "non-public address 169.254.169.254" in report.errors["meta"]
    assert "non-public address" in sched.store.feed_state("meta")["last_error"]
    assert len(sched.queue) == 0


def test_an_article_link_to_a_private_address_is_never_fetched(
    site: Site, settings: Settings, client: redis.Redis, dns: Resolver
) -> None:
    """The entry's link names a host that resolves to loopback: the worker refuses
    it before any request, records why, and stores what the feed said."""
    strict_settings = settings.with_(allow_private_networks=False)
    port = site.server.server_address[1]
    site.routes["/admin"] = Response(200, {"Content-Type": "text/html"}, b"<p>internal</p>")
    dns.answers["inside.example"] = ["127.0.0.1"]
    link = f"http://inside.example:{port}/admin"
    entry = FeedEntry(feed="test", link=link, canonical_url=canonicalize(link), guid=link,
                      title="A story", published="2025-02-20T11:05:00Z",
                      summary="<p>What the feed said about it.</p>")
    run_jobs(strict_settings, client, (entry,))
    assert site.requests == []
    article = stored(client, entry)
    assert article["source"] == "feed" and article["text"] == "What the feed said about it."
    assert "resolves to non-public address 127.0.0.1" in article["fetch_error"]


def test_feeds_and_pages_have_their_own_size_limits(
    site: Site, settings: Settings, client: redis.Redis
) -> None:
    """Feed limit 2,000 bytes, page limit 50,000: a 3 KB page passes where a 3 KB feed
    does not, and a 60 KB page is cut off (its feed content stored instead)."""
    limited = settings.with_(feed_max_bytes=2000, page_max_bytes=50_000)
    one = "<item><title>{0}</title><link>{1}/{0}</link><description>Feed text about {0}." \
          "</description></item>"
    small = rss((one.format("small", site.base) + one.format("big", site.base)).encode())
    assert len(small) < 2000
    site.routes["/small-feed"] = Response(200, {"Content-Type": "application/rss+xml"}, small)
    site.routes["/big-feed"] = Response(
        200, {"Content-Type": "application/rss+xml"}, small + b"<!--" + b"x" * 3000 + b"-->")
    page = article_page("the harbour")
    assert 2000 < len(page) < 50_000
    site.routes["/small"] = Response(200, {"Content-Type": "text/html"}, page)
    site.routes["/big"] = Response(200, {"Content-Type": "text/html"},
                                   page.replace(b"</body>", b"<!--" + b"x" * 60_000 + b"-->"))
    write_feeds(limited.feeds_path, {"small": site.url("/small-feed"),
                                     "big": site.url("/big-feed")})
    runtime = Runtime.create(limited)
    install(runtime)
    sched = Scheduler(limited, client)
    try:
        report = sched.tick(T0)
        work(sched, client)
    finally:
        install(None)
        sched.close()
        runtime.fetcher.close()
        runtime.store.redis.close()
    assert list(report.errors) == ["big"] and "2000-byte limit" in report.errors["big"]
    by_title = {
        fields[b"title"].decode(): {k.decode(): v.decode() for k, v in fields.items()}
        for fields in (client.hgetall(key) for key in client.scan_iter("news:article:*"))
    }
    assert by_title["small"]["source"] == "page"
    assert "the harbour" in by_title["small"]["text"]
    assert by_title["big"]["source"] == "feed"
    assert by_title["big"]["text"] == "Feed text about big."
    assert "50000-byte limit" in by_title["big"]["fetch_error"]


def test_a_page_title_of_a_megabyte_is_cut_to_the_cap() -> None:
    """The feed's title wins when it has one (already capped); this entry has none."""
    huge = "Headline " * 120_000
    story = "<p>" + "Officials said on Thursday that the plan would be reviewed. " * 5 + "</p>"
    html = (f'<html><head><meta property="og:title" content="{huge}"><title>{huge}</title>'
            f"</head><body><article><h1>{huge}</h1>{story * 3}</article></body></html>")
    entry = FeedEntry(feed="x", link=BASE + "/a", canonical_url=BASE + "/a", guid="g", title="")
    article = clean_page(html, url=BASE + "/a", entry=entry)
    assert article is not None
    assert 990 <= len(article.title) <= 1000 and article.title.startswith("Headline Headline")
