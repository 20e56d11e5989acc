"""The HTTP adapter: one ``httpx.Client`` per process, every request bounded.

Bounds: the body is cut off while streaming once it passes the limit (decoded
bytes, so a gzip or brotli bomb stops at the same limit); one deadline covers
the whole request with its redirects; redirects are followed by hand, at most
``max_redirects``, so that every hop is checked before it is requested:
only http(s), and never a loopback, private, link-local or unspecified address
unless private networks are allowed (SSRF; the cloud metadata address
169.254.169.254 is link-local).
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import time
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

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


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse ``url`` unless it is http(s) to a public address.

    Every address the host name resolves to must be public, so that a name
    pointing at 127.0.0.1 is refused like the literal. Raises
    :class:`BlockedURLError` (no request made) or :class:`TransientFetchError`
    when the name does not resolve.
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
        infos = socket.getaddrinfo(host, port or 80, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as e:
        raise TransientFetchError(f"cannot resolve host {host!r}: {e}", url=url) from e
    for info in infos:
        address = str(info[4][0])
        if not _is_public(address):
            raise BlockedURLError(
                f"refused {url}: {host} resolves to non-public address {address} "
                "(set NEWSWIRE_ALLOW_PRIVATE_NETWORKS=1 to allow)",
                url=url,
            )


class Fetcher:
    """Bounded GETs over one shared ``httpx.Client`` (thread-safe)."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.client = httpx.Client(
            headers={"User-Agent": settings.user_agent},
            timeout=httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout),
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        #: robots.txt rules per origin, for pages (None: not obeyed, by settings).
        self.robots = RobotsCache(self._robots_txt, settings.user_agent) if (
            settings.obey_robots) else None

    def _robots_txt(self, url: str) -> tuple[int, bytes]:
        response = self.get(url, max_bytes=ROBOTS_MAX_BYTES, accept="text/plain", robots=False)
        return response.status, response.body

    def close(self) -> None:
        self.client.close()

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
        # Only what _Inflater can bound (httpx would also offer br and zstd if installed).
        request_headers = {
            "Accept": accept, "Accept-Encoding": "gzip, deflate", **(headers or {})
        }
        current, permanent_url, permanent_chain = url, None, True
        for _hop in range(self.settings.max_redirects + 1):
            check_url(current, allow_private=self.settings.allow_private_networks)
            if robots and self.robots is not None:
                self.robots.check(current)
            status, response_headers, body = self._one(
                current, request_headers, max_bytes=max_bytes, deadline=deadline
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
        self, url: str, headers: Mapping[str, str], *, max_bytes: int, deadline: float
    ) -> tuple[int, dict[str, str], bytes]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientFetchError(
                f"{url}: gave up after {self.settings.request_timeout:g}s", url=url
            )
        timeout = httpx.Timeout(remaining, connect=min(self.settings.connect_timeout, remaining))
        try:
            with self.client.stream("GET", url, headers=headers, timeout=timeout) as response:
                response_headers = {k.lower(): v for k, v in response.headers.items()}
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
        except httpx.TimeoutException as e:
            raise TransientFetchError(f"{url}: timed out ({type(e).__name__})", url=url) from e
        except (httpx.TransportError, httpx.InvalidURL) as e:
            raise TransientFetchError(f"{url}: {type(e).__name__}: {e}", url=url) from e
