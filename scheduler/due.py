"""The scheduler's Redis adapter for ``news:feeds:due``: which feeds are due, and claims.

Every configured feed has a score in the sorted set (its next check, or the lease
of the scheduler polling it), so a tick reads only the feeds due now, in the
order they fell due, however many feeds there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from newswire.schema import CLAIM_DUE_FEEDS, Keys
from newswire.store import decoded


class DueFeeds:
    """Reads and claims of ``{prefix}:feeds:due``."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.key = keys.feeds_due
        self._claim = client.register_script(CLAIM_DUE_FEEDS)

    def sync(self, names: Iterable[str]) -> tuple[int, int]:
        """Make the set hold exactly ``names``: a feed new to the file is due at once
        (a known one keeps its time), a feed gone from the file leaves (its state
        stays, so it resumes where it was if it comes back). Returns (added, removed)."""
        keep = set(names)
        members = {decoded(m) for m in self.redis.zrange(self.key, 0, -1)}
        added, gone = keep - members, members - keep
        pipe = self.redis.pipeline(transaction=False)
        if added:
            # NX: another scheduler may have polled it between the read and here.
            pipe.zadd(self.key, dict.fromkeys(added, 0), nx=True)
        if gone:
            pipe.zrem(self.key, *gone)
        pipe.execute()
        return len(added), len(gone)

    def due(self, now: float, limit: int) -> list[str]:
        """Up to ``limit`` feeds due at ``now``, longest overdue first."""
        return [decoded(m) for m in self.redis.zrangebyscore(self.key, "-inf", now, 0, limit)]

    def claim(self, names: Sequence[str], now: float, lease_until: float) -> list[str]:
        """Those of ``names`` still due, now leased to this scheduler."""
        if not names:
            return []
        claimed = self._claim(keys=[self.key], args=[now, lease_until, *names])
        return [decoded(m) for m in claimed]

    def next_time(self) -> float | None:
        """The earliest next check of any feed (None: no feeds)."""
        first = self.redis.zrange(self.key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None
