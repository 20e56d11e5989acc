"""robots.txt for article pages (RFC 9309), fetched once per origin and cached.

The rules are Protego's (longest match wins, ``Allow`` beats ``Disallow`` on a
tie, ``*`` and ``$`` patterns), matched for newswire's product token. What an
answer means follows RFC 9309 2.3.1: a robots.txt that is there is obeyed; a
4xx means there are no rules; a 5xx or no answer at all means "disallow
everything" for now, which newswire reports as a transient failure so that the
article job is retried later. Feeds are not checked: a feed is fetched because
someone subscribed to it by name, as feed readers do.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from protego import Protego

from .errors import (
    BlockedURLError,
    DisallowedByRobotsError,
    FetchError,
    TransientFetchError,
)

#: How long an origin's rules are kept (RFC 9309 2.4: SHOULD NOT use a cached copy for
#: more than 24 hours), and how long an unreachable robots.txt stops its pages.
CACHE_SECONDS = 86_400.0
UNREACHABLE_SECONDS = 300.0
#: RFC 9309 2.5: at least 500 KiB of a robots.txt must be read.
MAX_BYTES = 512 * 1024
#: Origins kept in memory at most (least recently used go first).
MAX_ORIGINS = 10_000

#: Fetch a robots.txt URL: (HTTP status, body). Raises FetchError subclasses.
RobotsFetch = Callable[[str], tuple[int, bytes]]


def robots_url(url: str) -> str:
    """The robots.txt that governs ``url`` (same scheme, host and port)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), "/robots.txt", "", ""))


@dataclass(frozen=True)
class RobotsRules:
    """What one origin's robots.txt says (None: no rules, everything allowed)."""

    parser: Protego | None
    unreachable: str = ""  # why it could not be read: everything waits until it can

    @classmethod
    def parse(cls, body: bytes) -> RobotsRules:
        return cls(Protego.parse(body.decode("utf-8", "replace")))

    def allows(self, url: str, token: str) -> bool:
        if self.unreachable:
            return False
        return self.parser is None or bool(self.parser.can_fetch(url, token))


class RobotsCache:
    """Per-origin rules, fetched on first use and kept for a day (thread-safe)."""

    def __init__(
        self,
        fetch: RobotsFetch,
        user_agent: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        #: The product token robots.txt groups are matched against ("newswire").
        self.token = user_agent.split("/", 1)[0].strip() or user_agent
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, RobotsRules]] = OrderedDict()

    def rules(self, url: str) -> RobotsRules:
        origin = robots_url(url)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(origin)
            if cached and cached[0] > now:
                self._cache.move_to_end(origin)
                return cached[1]
        rules, keep = self._read(origin)
        with self._lock:
            self._cache[origin] = (now + keep, rules)
            self._cache.move_to_end(origin)
            while len(self._cache) > MAX_ORIGINS:
                self._cache.popitem(last=False)
        return rules

    def _read(self, origin: str) -> tuple[RobotsRules, float]:
        try:
            status, body = self._fetch(origin)
        except TransientFetchError as e:  # 5xx, 429, timeouts, no connection
            return RobotsRules(None, unreachable=str(e)), UNREACHABLE_SECONDS
        except (BlockedURLError, FetchError):  # 4xx, too large, a refused redirect
            return RobotsRules(None), CACHE_SECONDS
        if 200 <= status < 300:
            return RobotsRules.parse(body), CACHE_SECONDS
        return RobotsRules(None), CACHE_SECONDS

    def check(self, url: str) -> None:
        """Raise unless robots.txt lets newswire fetch ``url``:
        :class:`DisallowedByRobotsError`, or :class:`TransientFetchError` while the
        site's robots.txt can't be read."""
        rules = self.rules(url)
        if rules.unreachable:
            raise TransientFetchError(
                f"{url}: robots.txt unreachable, not fetching for now ({rules.unreachable})",
                url=url,
            )
        if not rules.allows(url, self.token):
            raise DisallowedByRobotsError(f"{url}: disallowed by robots.txt", url=url)
