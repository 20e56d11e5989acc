"""The HTTP adapter: one httpx transport per process, every request bounded.

Bounds: the body is cut off while streaming once it passes the limit (decoded
bytes, so a gzip or deflate bomb stops at the same limit; only those two are
asked for, and any other content encoding, brotli included, is refused); one
deadline covers the whole request with its redirects, enforced on the socket
itself, so a server that drips its headers a byte at a time is cut off too;
redirects are followed by hand, at most ``max_redirects``, so that every hop is
checked before it is requested: only http(s), and never a loopback, private,
link-local or unspecified address unless private networks are allowed (SSRF;
the cloud metadata address 169.254.169.254 is link-local).

The address checked is the address connected to: the client's network backend
(:class:`_CheckedBackend`) resolves the host name itself, checks every address
and connects to a checked one, so a name whose DNS answer changes between the
check and the connection (DNS rebinding) cannot lead it to a private address.
TLS still verifies the certificate against the host name, and the ``Host``
header is the URL's. Proxies from the environment (``HTTP_PROXY`` ...) are not
used, since a proxy would resolve the names itself.

Connections are kept alive in a small pool per origin (:class:`_OriginPools`),
and requests go to the transport without an ``httpx.Client`` (:class:`Fetcher`).
"""

from __future__ import annotations

import contextvars
import email.utils
import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import closing
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from .errors import (
    BlockedURLError,
    FetchError,
    HTTPStatusError,
    TooLargeError,
    TransientFetchError,
)
from .model import FetchedResponse
from .robots import MAX_BYTES as ROBOTS_MAX_BYTES
from .robots import RobotsCache
from .settings import Settings

_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}
#: What the worker and ``newswire extract`` ask for when they fetch an article page.
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
#: Statuses that may go away by themselves (RFC 9110 15.6; 429 from RFC 6585).
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}
_RETRY_AFTER_CAP = 86_400.0


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header.

    Delta-seconds or an HTTP-date (RFC 9110 10.2.3), capped at a day.
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone also accepts superscripts
        return min(float(value), _RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return min(max((when - now).total_seconds(), 0.0), _RETRY_AFTER_CAP)


def _server_date(headers: Mapping[str, str]) -> datetime | None:
    """The response's ``Date``: a ``Retry-After`` date is read against the server's
    clock, so a skew between its clock and ours does not stretch or cut the wait."""
    try:
        when = email.utils.parsedate_to_datetime(headers.get("date", ""))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class _Inflater:
    """Content-Encoding decoding that never produces more than it is asked for.

    httpx inflates each network chunk whole, so a small gzip bomb can cost
    hundreds of MiB before a size check sees it; ``zlib``'s ``max_length``
    keeps every step within the remaining budget instead.
    """

    def __init__(self, encoding: str, url: str) -> None:
        encoding = encoding.strip().lower()
        self._zlib: zlib._Decompress | None
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
        else:
            raise FetchError(f"{url}: unsupported content encoding {encoding!r}", url=url)
        self.url = url

    def feed(self, data: bytes, budget: int) -> bytes:
        """Decoded bytes of ``data``, at most ``budget + 1`` of them (one over: too large)."""
        if self._zlib is None:
            return data[: budget + 1]
        try:
            out = self._zlib.decompress(data, budget + 1)
            while self._zlib.unconsumed_tail and len(out) <= budget:
                out += self._zlib.decompress(self._zlib.unconsumed_tail, budget + 1 - len(out))
        except zlib.error as e:
            raise FetchError(f"{self.url}: corrupt compressed body: {e}", url=self.url) from e
        return out


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to: mapped, 6to4, Teredo or NAT64."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]  # (server, client): the client is where traffic goes
    if ip in _NAT64:  # RFC 6052 well-known prefix: the last 32 bits are the IPv4 address
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and not _is_public(str(inner)):
            return False
    return ip.is_global and not ip.is_multicast


#: The monotonic time by which the request in progress in this thread (or task)
#: must be over; set by :meth:`Fetcher.get`, read by
#: :class:`_DeadlineStream` and :func:`_resolve`.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "newswire_http_deadline", default=None
)


#: Name lookups run here, so that a request can stop waiting for one at its deadline
#: (``getaddrinfo`` itself cannot be interrupted; the resolver's own timeouts end it).
_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="newswire-dns")


def _resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for a TCP connection; numeric forms (``2130706433``,
    ``0x7f.1``, ``127.1``) come back as the address the system would use.

    Within a :meth:`Fetcher.get`, waits no longer than what is left of its
    deadline (``socket.gaierror`` then, like a failed lookup).
    """
    deadline = _DEADLINE.get()
    lookup = partial(socket.getaddrinfo, host.strip("[]"), port, type=socket.SOCK_STREAM)
    if deadline is None:
        return lookup()
    future = _LOOKUPS.submit(lookup)
    try:
        return future.result(timeout=max(deadline - time.monotonic(), 0.0))
    except FutureTimeout:
        future.cancel()
        raise socket.gaierror(
            socket.EAI_AGAIN, "the lookup outlived the request's deadline"
        ) from None


def _refuse_non_public(host: str, infos: Iterable[tuple[Any, ...]], url: str) -> None:
    """Raise :class:`BlockedURLError` (for ``url``; none: a bare connection) if
    any resolved address is not public."""
    for info in infos:
        address = str(info[4][0])
        if not _is_public(address):
            reason = (
                f"{host} resolves to non-public address {address} "
                "(set NEWSWIRE_ALLOW_PRIVATE_NETWORKS=1 to allow)"
            )
            raise BlockedURLError(f"refused {url}: {reason}" if url else reason, url=url)


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse ``url`` unless it is http(s) to a public address.

    Every address the host name resolves to must be public, so that a name
    pointing at 127.0.0.1 is refused like the literal. Raises
    :class:`BlockedURLError` (no request made) or :class:`TransientFetchError`
    when the name does not resolve. :class:`Fetcher` checks the addresses once
    more when it connects, on the very answer it connects to.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise BlockedURLError(f"invalid URL {url!r}: {e}", url=url) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BlockedURLError(f"refused non-HTTP URL {url!r}", url=url)
    host = parts.hostname
    if not host:
        raise BlockedURLError(f"URL has no host: {url!r}", url=url)
    if allow_private:
        return
    try:
        infos = _resolve(host, port or 80)
    except (socket.gaierror, UnicodeError) as e:
        raise TransientFetchError(f"cannot resolve host {host!r}: {e}", url=url) from e
    _refuse_non_public(host, infos, url)


def _within_deadline(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the request's deadline.

    httpx's timeouts apply to each socket operation, so a server that sends
    one header line at a time restarts the read timeout with every line; the
    deadline caps every operation at what is left of the whole.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _within_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _within_deadline(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _within_deadline(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CheckedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, but the name is resolved here, every address
    checked, and the connection made to a checked address (no second lookup)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = _resolve(host, port)
        except (socket.gaierror, UnicodeError) as e:
            raise httpcore.ConnectError(f"cannot resolve host {host!r}: {e}") from e
        if not self.allow_private:
            _refuse_non_public(host, infos, "")
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        error: Exception = httpcore.ConnectError(f"{host!r} has no address")
        for address in addresses:  # each a literal: create_connection does no DNS for it
            try:
                stream = self._sockets.connect_tcp(
                    address, port, _within_deadline(timeout, httpcore.ConnectTimeout),
                    local_address, socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
                continue
            return _DeadlineStream(stream)
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for fetching")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _OriginPools:
    """httpcore connection pools, one per origin (scheme, host, port), made on demand.

    httpcore's pool looks at every connection it holds, twice per request, and
    asks each idle one whether its server has hung up (a ``poll`` system call):
    with the scheduler's connections to many hosts kept alive in one pool, that
    scan cost more than the request itself. A pool per origin scans only that
    origin's few connections. A pool no request has used for longer than the
    keep-alive expiry holds only expired connections, so it is closed and
    dropped: the pools (and their sockets) are those of the origins of the last
    few seconds. ``max_connections`` is per origin now; what bounds the
    connections open at once is the callers' concurrency (the scheduler's
    ``poll_concurrency`` threads, one request at a time in a worker).
    """

    def __init__(self, make_pool: Callable[[], httpcore.ConnectionPool], expiry: float) -> None:
        self._make_pool = make_pool
        self._expiry = expiry
        self._lock = threading.Lock()
        #: origin -> [pool, requests using it (response bodies included), last use]
        self._pools: dict[tuple[bytes, bytes, int | None], list[Any]] = {}
        self._swept = time.monotonic()

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = (request.url.scheme, request.url.host, request.url.port)
        now = time.monotonic()
        with self._lock:
            entry = self._pools.get(origin)
            if entry is None:
                entry = self._pools[origin] = [self._make_pool(), 0, now]
            entry[1] += 1
            entry[2] = now
            stale = self._sweep(now)
        for pool in stale:
            pool.close()
        try:
            response = entry[0].handle_request(request)
        except BaseException:
            self._release(entry)
            raise
        stream = response.stream
        assert isinstance(stream, Iterable)
        return httpcore.Response(
            status=response.status, headers=response.headers,
            content=_ReleasingStream(stream, partial(self._release, entry)),
            extensions=response.extensions,
        )

    def _release(self, entry: list[Any]) -> None:
        with self._lock:
            entry[1] -= 1
            entry[2] = time.monotonic()

    def _sweep(self, now: float) -> list[httpcore.ConnectionPool]:
        """Under the lock: take out the pools unused for longer than the expiry."""
        if now - self._swept < self._expiry:
            return []
        self._swept = now
        stale = [origin for origin, (_, users, last) in self._pools.items()
                 if not users and now - last > self._expiry]
        return [self._pools.pop(origin)[0] for origin in stale]

    def connections(self) -> dict[tuple[bytes, bytes, int | None], int]:
        """Connections open or opening, by origin (scheme, host, port)."""
        with self._lock:
            return {origin: len(entry[0].connections) for origin, entry in self._pools.items()}

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool, _, _ in pools.values():
            pool.close()


class _ReleasingStream:
    """A response body that tells its :class:`_OriginPools` entry when it is closed."""

    def __init__(self, stream: Iterable[bytes], release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's own transport over a :class:`_CheckedBackend`, a pool per origin.

    ``verify``: as httpx's (True: the system's trusted CAs via certifi; an
    ``SSLContext``: that one, as the TLS tests use).
    """

    def __init__(
        self, *, allow_private: bool, limits: httpx.Limits, verify: ssl.SSLContext | bool = True
    ) -> None:
        # trust_env: SSL_CERT_FILE and SSL_CERT_DIR are honoured, as httpx does. The
        # context is made once (loading the CAs takes some 20 ms) and handed to httpx,
        # which would otherwise load them again for a pool that ours replaces.
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=True)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        backend = _CheckedBackend(allow_private=allow_private)
        expiry = 5.0 if limits.keepalive_expiry is None else limits.keepalive_expiry
        # httpx 0.28 takes no network backend, so its pool is replaced by ours.
        self.pools = _OriginPools(
            lambda: httpcore.ConnectionPool(
                ssl_context=ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=backend,
            ),
            expiry,
        )
        self._pool = self.pools  # type: ignore[assignment]


class Fetcher:
    """Bounded GETs over one shared httpx transport (thread-safe).

    Requests go to the transport itself, not through an ``httpx.Client``: the
    redirects are followed here, hop by hop, and what the client adds above its
    transport (URL and header merging, auth and redirect layers, event hooks, a
    cookie jar for the whole process) cost a third of a 304 poll's CPU for
    nothing newswire needs. Cookies live for one :meth:`get`: a site that sets
    one on a redirect and wants it back on the next hop gets it, and no site's
    cookies ride on later requests (a metered paywall counts visits by them).
    """

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self.transport = transport or _CheckedTransport(
            allow_private=settings.allow_private_networks, limits=limits
        )
        #: robots.txt rules per origin, for pages (None: not obeyed, by settings).
        self.robots = RobotsCache(self._robots_txt, settings.user_agent) if (
            settings.obey_robots) else None

    def _robots_txt(self, url: str) -> tuple[int, bytes]:
        response = self.get(url, max_bytes=ROBOTS_MAX_BYTES, accept="text/plain", robots=False)
        return response.status, response.body

    def close(self) -> None:
        self.transport.close()

    def get(
        self,
        url: str,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        accept: str = "*/*",
        robots: bool = True,
    ) -> FetchedResponse:
        """GET ``url`` following redirects; 2xx and 304 come back, the rest raise.

        ``robots``: check every hop against its site's robots.txt first (pages;
        the scheduler passes False for feeds). Raises :class:`BlockedURLError`
        (:class:`DisallowedByRobotsError` for robots.txt), :class:`TooLargeError`,
        :class:`TransientFetchError` (timeouts, connection errors, 408/429/5xx;
        ``retry_after`` set from the header) or :class:`HTTPStatusError`.
        """
        started = time.monotonic()
        deadline = started + self.settings.request_timeout
        token = _DEADLINE.set(deadline)
        try:
            return self._follow(url, max_bytes=max_bytes, headers=headers, accept=accept,
                                robots=robots, started=started, deadline=deadline)
        finally:
            _DEADLINE.reset(token)

    def _follow(
        self,
        url: str,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None,
        accept: str,
        robots: bool,
        started: float,
        deadline: float,
    ) -> FetchedResponse:
        # Only what _Inflater can bound (httpx would also offer br and zstd if installed).
        request_headers = {
            "User-Agent": self.settings.user_agent, "Accept": accept,
            "Accept-Encoding": "gzip, deflate", **(headers or {}),
        }
        cookies = httpx.Cookies()  # set by a redirect, sent on the next hops
        current, permanent_url, permanent_chain = url, None, True
        for _hop in range(self.settings.max_redirects + 1):
            check_url(current, allow_private=self.settings.allow_private_networks)
            if robots and self.robots is not None:
                self.robots.check(current)
            status, response_headers, body = self._one(
                current, request_headers, cookies, max_bytes=max_bytes, deadline=deadline
            )
            if 300 <= status < 400 and status != 304 and not (
                status in _REDIRECTS and response_headers.get("location", "").strip()
            ):
                raise HTTPStatusError(
                    f"{current} answered {status} without a usable Location", url=current,
                    status=status,
                )
            if status in _REDIRECTS:
                target = urljoin(current, response_headers["location"].strip())
                if target == current:
                    raise FetchError(f"redirect loop at {current}", url=url, status=status)
                permanent_chain = permanent_chain and status in _PERMANENT
                if permanent_chain:
                    permanent_url = target
                current = target
                continue
            if status in TRANSIENT_STATUSES:
                raise TransientFetchError(
                    f"{current} answered {status}",
                    url=current,
                    status=status,
                    retry_after=retry_after_seconds(
                        response_headers.get("retry-after"), _server_date(response_headers)
                    ),
                )
            if status >= 400:
                raise HTTPStatusError(f"{current} answered {status}", url=current, status=status)
            return FetchedResponse(
                url=current,
                status=status,
                headers=response_headers,
                body=body,
                permanent_url=permanent_url,
                elapsed=time.monotonic() - started,
            )
        raise FetchError(
            f"too many redirects (more than {self.settings.max_redirects}) from {url}", url=url
        )

    def _one(
        self,
        url: str,
        headers: Mapping[str, str],
        cookies: httpx.Cookies,
        *,
        max_bytes: int,
        deadline: float,
    ) -> tuple[int, dict[str, str], bytes]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientFetchError(
                f"{url}: gave up after {self.settings.request_timeout:g}s", url=url
            )
        timeout = httpx.Timeout(remaining, connect=min(self.settings.connect_timeout, remaining))
        try:
            request = httpx.Request(
                "GET", url, headers=headers, extensions={"timeout": timeout.as_dict()}
            )
        except httpx.InvalidURL as e:
            raise BlockedURLError(f"invalid URL {url!r}: {e}", url=url) from None
        if cookies:
            cookies.set_cookie_header(request)
        try:
            response = self.transport.handle_request(request)
            response.request = request
            with closing(response):
                response_headers = {k.lower(): v for k, v in response.headers.items()}
                if response.status_code in _REDIRECTS and "set-cookie" in response_headers:
                    cookies.extract_cookies(response)
                if response.status_code in _REDIRECTS or response.status_code >= 400:
                    return response.status_code, response_headers, b""
                declared = response_headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise TooLargeError(
                        f"{url}: body of {int(declared)} bytes is over the {max_bytes}-byte limit",
                        url=url,
                    )
                inflater = _Inflater(response_headers.get("content-encoding", ""), url)
                chunks: list[bytes] = []
                size = 0
                for raw in response.iter_raw():
                    chunk = inflater.feed(raw, max_bytes - size)
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLargeError(
                            f"{url}: body over the {max_bytes}-byte limit, cut off", url=url
                        )
                    if time.monotonic() > deadline:
                        raise TransientFetchError(
                            f"{url}: gave up after {self.settings.request_timeout:g}s", url=url
                        )
                    chunks.append(chunk)
                return response.status_code, response_headers, b"".join(chunks)
        except BlockedURLError as e:
            if e.url:
                raise
            # From _CheckedBackend, at connection time: it knows the host, not the URL.
            raise BlockedURLError(f"refused {url}: {e}", url=url) from None
        except httpx.TimeoutException as e:
            raise TransientFetchError(
                f"{url}: timed out ({type(e).__name__}: {e})", url=url
            ) from e
        except httpx.TransportError as e:
            raise TransientFetchError(f"{url}: {type(e).__name__}: {e}", url=url) from e
