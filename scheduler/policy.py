"""When to poll a feed next, and what a poll's response does to its state.

Pure functions of ``now`` (epoch seconds), the feed's stored state and the
last response; nothing here touches the network, Redis or the clock.
"""

from __future__ import annotations

import email.utils
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from newswire.model import FeedEntry, iso, parse_iso

#: Bounds of a publisher's hint (ttl, max-age, Expires) and of every wait.
MIN_INTERVAL = 60.0
MAX_INTERVAL = 86_400.0
#: Default bounds of the adaptive interval (``NEWSWIRE_MIN_INTERVAL``, ``_MAX_INTERVAL``).
ADAPTIVE_MIN = 300.0
ADAPTIVE_MAX = 43_200.0
#: How many of the latest publication times are kept to learn a feed's pace.
HISTORY = 16
#: Polls that must see the same permanent redirect before the feed's URL moves.
MOVE_CONFIRMATIONS = 2
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


def publish_gap(times: Iterable[float], now: float) -> float | None:
    """Typical seconds between two posts of a feed, from its latest publication times.

    The median gap between the latest distinct times (at least three are needed),
    so one burst or one long pause does not swing it; a feed that has been
    quiet for longer than that stretches it to half its silence, so a wire
    that stops overnight is polled less until it speaks again. Times more than
    an hour ahead of ``now`` are clock errors and are ignored.
    """
    latest = sorted({t for t in times if t <= now + 3600.0}, reverse=True)[:HISTORY]
    if len(latest) < 3:
        return None
    typical = statistics.median(a - b for a, b in zip(latest, latest[1:], strict=False))
    return max(typical, (now - latest[0]) / 2.0)


def adaptive_interval(
    times: Iterable[float], now: float, *, bounds: tuple[float, float] = (ADAPTIVE_MIN,
                                                                          ADAPTIVE_MAX),
) -> float | None:
    """Seconds between polls for a feed that posts at the pace ``times`` show.

    Half the typical gap between posts (a post waits half a gap on average
    before it is seen), kept within ``bounds``; None when the history is too
    short to tell.
    """
    gap = publish_gap(times, now)
    if gap is None:
        return None
    low, high = bounds
    return min(max(gap / 2.0, low), high)


def plan_next(
    now: float,
    *,
    interval: float,
    hint: float | None = None,
    adaptive: float | None = None,
    errors: int = 0,
    retry_after: float | None = None,
    disabled: bool = False,
    jitter: float = 0.5,
) -> tuple[float, str]:
    """Epoch seconds of the next poll, and why (the reason shown by ``newswire feeds``).

    ``interval``: the feed's own or the default. ``hint``: what the response
    said (:func:`freshness_hint`), kept within [1 minute, 1 day]; it replaces
    ``interval``. ``adaptive``: the interval learnt from the feed's pace
    (:func:`adaptive_interval`), used instead of a default interval; a hint is
    then a floor (the publisher says polling sooner gets nothing new).
    ``errors``: consecutive failures, each doubling the wait up to a day,
    spread by ``jitter`` (0..1; 0.5 spreads nothing). ``retry_after``
    (429/503) is a floor, capped at a day. A ``disabled`` feed is tried once a day.
    """
    if disabled:
        return now + MAX_INTERVAL, "disabled"
    bounded = min(max(hint, MIN_INTERVAL), MAX_INTERVAL) if hint else None
    if adaptive is not None:
        delay, reason = adaptive, "adaptive"
        if bounded is not None and bounded > adaptive:
            delay, reason = bounded, "publisher"
    elif bounded is not None:
        delay, reason = bounded, "publisher"
    else:
        delay, reason = float(interval), "interval"
    if errors:
        delay = min(delay * 2.0 ** min(errors - 1, 32), MAX_INTERVAL)
        delay *= 1.0 + JITTER * (2.0 * jitter - 1.0)
        reason = "backoff"
    if retry_after is not None and min(retry_after, MAX_INTERVAL) > delay:
        delay, reason = min(retry_after, MAX_INTERVAL), "retry-after"
    return now + delay, reason


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
    """Epoch seconds of the next poll (:func:`plan_next` without its reason)."""
    return plan_next(
        now, interval=interval, hint=hint, errors=errors, retry_after=retry_after,
        disabled=disabled, jitter=jitter,
    )[0]


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
    #: Entries never seen before, across all feeds (the pace of undated feeds).
    new_entries: int = 0


def _times(raw: str) -> list[float]:
    return [float(t) for t in raw.split() if t.replace(".", "", 1).isdigit()]


def publication_times(
    state: Mapping[str, str], result: PollResult, now: float
) -> list[float]:
    """The feed's publication history after ``result``: the latest :data:`HISTORY`
    distinct times, newest first. Dated entries give their dates; a poll that
    found new undated entries counts as one publication at ``now``."""
    times = set(_times(state.get("published_times", "")))
    dated: set[float] = set()
    undated = False
    for entry in result.entries:
        published = parse_iso(entry.published) if entry.published else None
        if published is None:
            undated = True
        else:
            dated.add(float(int(published.timestamp())))
    if len(dated) == 1 and len(result.entries) > 1:
        # Every entry carries the same date (often the time the feed was generated):
        # that says nothing of when each was published, so the feed counts as undated.
        dated, undated = set(), True
    times |= dated
    if undated and result.new_entries:
        times.add(float(int(now)))
    return sorted(times, reverse=True)[:HISTORY]


def _moved(state: Mapping[str, str], result: PollResult) -> dict[str, str]:
    """Where the feed lives after a successful poll: a permanent redirect moves it
    only once :data:`MOVE_CONFIRMATIONS` polls in a row saw it lead to the same
    place (a redirect set by mistake, or for a moment, must not lose the feed)."""
    target = result.permanent_url
    if not target:
        return {"url": result.url or state.get("url", ""), "moved_to": "", "moved_seen": "0"}
    seen = int(state.get("moved_seen") or 0) + 1 if state.get("moved_to") == target else 1
    if seen >= MOVE_CONFIRMATIONS:
        return {"url": target, "moved_to": "", "moved_seen": "0"}
    return {"url": result.url or state.get("url", ""), "moved_to": target,
            "moved_seen": str(seen)}


def apply_result(
    state: Mapping[str, str],
    result: PollResult,
    *,
    now: float,
    config_url: str,
    interval: float,
    adaptive: bool = False,
    bounds: tuple[float, float] = (ADAPTIVE_MIN, ADAPTIVE_MAX),
    jitter: float = 0.5,
) -> tuple[dict[str, str], float]:
    """The feed's new state after ``result``, and its next check time.

    ``adaptive``: the feed has no ``interval`` of its own, so its pace (within
    ``bounds``) replaces the default ``interval`` once it is known.
    """
    new: dict[str, str] = {
        "config_url": config_url,
        "url": result.url or state.get("url") or config_url,
        "last_checked": stamp(now),
        "last_status": "" if result.status is None else str(result.status),
    }
    headers = result.headers or {}
    history = publication_times(state, result, now)
    pace = adaptive_interval(history, now, bounds=bounds) if adaptive else None
    if result.error:
        errors = int(state.get("errors") or 0) + 1
        failing_since = float(state.get("failing_since") or now)
        disabled = result.gone or now - failing_since >= DISABLE_AFTER
        new.update(
            url=state.get("url") or result.url or config_url,
            errors=str(errors),
            last_error=result.error,
            failing_since=repr(failing_since),
            disabled="1" if disabled else "0",
        )
        due, reason = plan_next(
            now, interval=interval, adaptive=pace, errors=errors,
            retry_after=result.retry_after, disabled=disabled, jitter=jitter,
        )
    else:
        new.update(
            errors="0", last_error="", failing_since="", disabled="0", last_success=stamp(now),
            published_times=" ".join(str(int(t)) for t in history),
            **_moved(state, result),
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
        due, reason = plan_next(
            now, interval=interval, hint=hint, adaptive=pace, retry_after=result.retry_after
        )
    new["next_check"] = stamp(due)
    new["interval"] = str(round(due - now))
    new["reason"] = reason
    return new, due
