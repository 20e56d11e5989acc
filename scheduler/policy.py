"""When to poll a feed next, and what a poll's response does to its state.

Pure functions of ``now`` (epoch seconds), the feed's stored state and the
last response; nothing here touches the network, Redis or the clock.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from newswire.model import FeedEntry, iso

MIN_INTERVAL = 60.0
MAX_INTERVAL = 86_400.0
#: A feed that has failed without a break for this long is disabled (still retried daily).
DISABLE_AFTER = 3 * 86_400.0
#: How much error backoff is spread (±10 %), so that feeds failing together
#: don't come back together.
JITTER = 0.1
#: How long a scheduler may hold a feed it is polling before another may take it.
POLL_LEASE = 300.0

_MAX_AGE = re.compile(r"(?:^|[,\s])(?:s-)?max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def stamp(t: float) -> str:
    """Epoch seconds as ISO 8601 UTC."""
    return iso(datetime.fromtimestamp(t, UTC))


def freshness_hint(headers: Mapping[str, str], now: float, ttl_minutes: int | None) -> float | None:
    """Seconds the publisher says the feed stays fresh, if it says so.

    ``Cache-Control: max-age`` first (RFC 9111 5.2.2.1; ``no-cache`` and
    ``no-store`` mean no hint), then ``Expires``, then RSS ``<ttl>`` (minutes).
    """
    cache_control = headers.get("cache-control", "")
    if cache_control and not re.search(r"no-cache|no-store", cache_control, re.IGNORECASE):
        match = _MAX_AGE.search(cache_control)
        if match:
            return float(match.group(1))
    expires = headers.get("expires", "")
    if expires:
        try:
            parsed = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            when = None
        else:
            # HTTP dates are always GMT (RFC 9110 5.6.7), whatever form they take.
            when = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        if when is not None and when > now:
            return when - now
    if ttl_minutes:
        return ttl_minutes * 60.0
    return None


def next_check(
    now: float,
    *,
    interval: float,
    hint: float | None = None,
    errors: int = 0,
    retry_after: float | None = None,
    disabled: bool = False,
    jitter: float = 0.5,
) -> float:
    """Epoch seconds of the next poll.

    ``interval``: the feed's own or the default. ``hint``: what the response
    said (:func:`freshness_hint`), which wins over the interval, within
    [1 minute, 1 day]. ``errors``: consecutive failures, each doubling the
    wait up to a day, spread by ``jitter`` (0..1; 0.5 spreads nothing).
    ``retry_after`` (429/503) is a floor, capped at a day. A ``disabled``
    feed is tried once a day.
    """
    if disabled:
        return now + MAX_INTERVAL
    delay = min(max(hint, MIN_INTERVAL), MAX_INTERVAL) if hint else float(interval)
    if errors:
        delay = min(delay * 2.0 ** min(errors - 1, 32), MAX_INTERVAL)
        delay *= 1.0 + JITTER * (2.0 * jitter - 1.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_INTERVAL))
    return now + delay


@dataclass(frozen=True)
class PollResult:
    """What one poll of a feed came to, before it is written back."""

    status: int | None  # HTTP status; None when no response came
    error: str = ""  # readable reason; '' on success
    entries: tuple[FeedEntry, ...] = ()
    url: str = ""  # URL polled
    permanent_url: str | None = None
    headers: Mapping[str, str] | None = None
    ttl_minutes: int | None = None
    retry_after: float | None = None
    body_hash: str = ""
    gone: bool = False  # 410: the publisher retired the feed


def apply_result(
    state: Mapping[str, str],
    result: PollResult,
    *,
    now: float,
    config_url: str,
    interval: float,
    jitter: float = 0.5,
) -> tuple[dict[str, str], float]:
    """The feed's new state after ``result``, and its next check time."""
    new: dict[str, str] = {
        "config_url": config_url,
        "url": result.permanent_url or result.url or state.get("url") or config_url,
        "last_checked": stamp(now),
        "last_status": "" if result.status is None else str(result.status),
    }
    headers = result.headers or {}
    if result.error:
        errors = int(state.get("errors") or 0) + 1
        failing_since = float(state.get("failing_since") or now)
        disabled = result.gone or now - failing_since >= DISABLE_AFTER
        new.update(
            errors=str(errors),
            last_error=result.error,
            failing_since=repr(failing_since),
            disabled="1" if disabled else "0",
        )
        due = next_check(
            now, interval=interval, errors=errors, retry_after=result.retry_after,
            disabled=disabled, jitter=jitter,
        )
    else:
        new.update(
            errors="0", last_error="", failing_since="", disabled="0", last_success=stamp(now)
        )
        ttl = result.ttl_minutes
        if result.status == 200:
            new.update(
                etag=headers.get("etag", ""),
                last_modified=headers.get("last-modified", ""),
                body_hash=result.body_hash or state.get("body_hash", ""),
                ttl="" if ttl is None else str(ttl),
            )
        elif ttl is None and (state.get("ttl") or "").isdigit():
            ttl = int(state["ttl"])  # a 304 has no body: the <ttl> of the last 200 holds
        hint = freshness_hint(headers, now, ttl)
        due = next_check(now, interval=interval, hint=hint, retry_after=result.retry_after)
    new["next_check"] = stamp(due)
    return new, due
