"""The polling policy: tables of (state, response, now) → (new state, next check).

Every case passes ``now`` explicitly; nothing sleeps and no clock is patched.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import pytest

from newswire.model import FeedEntry
from scheduler.policy import (
    ADAPTIVE_MAX,
    ADAPTIVE_MIN,
    PollResult,
    adaptive_interval,
    apply_result,
    freshness_hint,
    next_check,
    plan_next,
    publish_gap,
    stamp,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 86_400.0
INTERVAL = 900.0
URL = "https://example.com/feed.xml"


def http_date(t: float) -> str:
    return formatdate(t, usegmt=True)


# -- next_check ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "delay"),
    [
        ({}, INTERVAL),
        ({"hint": 600.0}, 600.0),  # the hint wins over the interval, shorter...
        ({"hint": 3600.0}, 3600.0),  # ...or longer
        ({"hint": 30.0}, 60.0),  # clamped to a minute
        ({"hint": 10 * DAY}, DAY),  # and to a day
        ({"errors": 1}, INTERVAL),
        ({"errors": 2}, 2 * INTERVAL),
        ({"errors": 3}, 4 * INTERVAL),
        ({"errors": 8}, DAY),  # 128 × 900 s, capped
        ({"errors": 2, "hint": 600.0}, 1200.0),
        ({"errors": 2, "jitter": 0.0}, 2 * INTERVAL * 0.9),
        ({"errors": 2, "jitter": 1.0}, 2 * INTERVAL * 1.1),
        ({"errors": 1, "jitter": 0.25}, INTERVAL * 0.95),
        ({"jitter": 0.0}, INTERVAL),  # no errors: nothing to spread
        ({"retry_after": 3600.0}, 3600.0),  # a floor...
        ({"retry_after": 60.0}, INTERVAL),  # ...that never shortens the wait
        ({"retry_after": 3600.0, "errors": 2}, 3600.0),
        ({"retry_after": 10 * DAY}, DAY),
        ({"disabled": True}, DAY),
        ({"disabled": True, "errors": 5, "hint": 60.0, "retry_after": 10.0}, DAY),
    ],
)
def test_next_check(kwargs: dict[str, Any], delay: float) -> None:
    assert next_check(NOW, interval=INTERVAL, **kwargs) == pytest.approx(NOW + delay)


def test_next_check_with_very_many_errors_stays_capped() -> None:
    assert next_check(NOW, interval=INTERVAL, errors=2000) == NOW + DAY


# -- freshness_hint ------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "ttl", "hint"),
    [
        ({}, None, None),
        ({"cache-control": "max-age=600"}, None, 600.0),
        ({"cache-control": "public, max-age=600, must-revalidate"}, None, 600.0),
        ({"cache-control": 'max-age="600"'}, None, 600.0),
        ({"cache-control": "max-age=600, no-store"}, None, None),
        ({"cache-control": "no-cache"}, 30, 1800.0),  # no hint from the header; <ttl> holds
        ({"cache-control": "max-age=600", "expires": http_date(NOW + 3600)}, None, 600.0),
        ({"cache-control": "max-age=600"}, 30, 600.0),
        ({"expires": http_date(NOW + 3600)}, None, 3600.0),
        ({"expires": http_date(NOW + 3600)}, 30, 3600.0),
        ({"expires": http_date(NOW - 3600)}, None, None),  # already stale
        ({"expires": "0"}, 30, 1800.0),  # invalid Expires means "already expired"
        ({}, 30, 1800.0),  # RSS <ttl> is in minutes
        ({}, 0, None),
    ],
)
def test_freshness_hint(headers: dict[str, str], ttl: int | None, hint: float | None) -> None:
    assert freshness_hint(headers, NOW, ttl) == hint


def test_expires_in_asctime_form_is_gmt_in_any_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    expires = time.asctime(time.gmtime(NOW + 3600))  # 'Tue Nov 14 23:13:20 2023'
    monkeypatch.setenv("TZ", "JST-9")  # a POSIX zone string: no tz database needed
    time.tzset()
    try:
        assert freshness_hint({"expires": expires}, NOW, None) == 3600.0
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("headers", "ttl", "delay"),
    [
        ({}, None, INTERVAL),
        ({"cache-control": "max-age=3600"}, None, 3600.0),
        ({"cache-control": "no-cache"}, None, INTERVAL),
        ({"cache-control": "max-age=0"}, None, INTERVAL),  # "revalidate each time": no hint
        ({"expires": http_date(NOW + 7200)}, None, 7200.0),
        ({}, 60, 3600.0),
        ({"cache-control": "max-age=5"}, None, 60.0),
        ({"cache-control": "max-age=31536000"}, None, DAY),
        ({}, 2000, DAY),
    ],
)
def test_response_headers_to_next_poll(
    headers: dict[str, str], ttl: int | None, delay: float
) -> None:
    hint = freshness_hint(headers, NOW, ttl)
    assert next_check(NOW, interval=INTERVAL, hint=hint) == NOW + delay


# -- apply_result --------------------------------------------------------------


def poll(
    state: dict[str, str], result: PollResult, now: float = NOW
) -> tuple[dict[str, str], float]:
    return apply_result(state, result, now=now, config_url=URL, interval=INTERVAL)


def test_200_stores_validators_and_resets_errors() -> None:
    state = {"errors": "3", "last_error": "boom", "failing_since": repr(NOW - 600)}
    headers = {"etag": '"e1"', "last-modified": "Tue, 14 Nov 2023 20:00:00 GMT"}
    new, due = poll(state, PollResult(200, url=URL, headers=headers, body_hash="h1"))
    assert new == {
        "config_url": URL,
        "url": URL,
        "last_checked": stamp(NOW),
        "last_status": "200",
        "errors": "0",
        "last_error": "",
        "failing_since": "",
        "disabled": "0",
        "last_success": stamp(NOW),
        "etag": '"e1"',
        "last_modified": "Tue, 14 Nov 2023 20:00:00 GMT",
        "body_hash": "h1",
        "ttl": "",
        "next_check": stamp(NOW + INTERVAL),
        "published_times": "",
        "moved_to": "",
        "moved_seen": "0",
        "interval": "900",
        "reason": "interval",
    }
    assert due == NOW + INTERVAL


def test_200_stores_the_feed_ttl_and_keeps_a_known_body_hash() -> None:
    new, due = poll({"body_hash": "old"}, PollResult(200, url=URL, ttl_minutes=45))
    assert (new["ttl"], new["body_hash"], due) == ("45", "old", NOW + 2700)


@pytest.mark.parametrize(
    ("state_ttl", "headers", "delay"),
    [
        ("30", {}, 1800.0),  # the <ttl> of the last 200 holds
        ("", {}, INTERVAL),
        ("30", {"cache-control": "max-age=120"}, 120.0),
    ],
)
def test_304_keeps_the_ttl_of_the_last_200(
    state_ttl: str, headers: dict[str, str], delay: float
) -> None:
    state = {"ttl": state_ttl, "etag": '"e1"', "body_hash": "h1"}
    new, due = poll(state, PollResult(304, url=URL, headers=headers))
    assert due == NOW + delay
    assert new["last_status"] == "304"
    assert new["last_success"] == stamp(NOW)
    # A 304 has no body: the stored validators, hash and ttl are left as they are.
    assert not {"etag", "last_modified", "body_hash", "ttl"} & new.keys()


def test_consecutive_errors_count_up_and_back_off() -> None:
    state: dict[str, str] = {}
    now = NOW
    for errors, delay in [(1, INTERVAL), (2, 2 * INTERVAL), (3, 4 * INTERVAL)]:
        new, due = poll(state, PollResult(503, error=f"503 #{errors}", url=URL), now=now)
        assert new["errors"] == str(errors)
        assert new["last_error"] == f"503 #{errors}"
        assert new["last_status"] == "503"
        assert float(new["failing_since"]) == NOW  # the first failure's time
        assert new["disabled"] == "0"
        assert due == now + delay
        state, now = {**state, **new}, due  # as the store's HSET merges


def test_error_without_a_response_and_retry_after() -> None:
    new, due = poll({}, PollResult(None, error="timed out", url=URL, retry_after=7200.0))
    assert new["last_status"] == ""
    assert due == NOW + 7200


def test_410_disables_at_once() -> None:
    new, due = poll({}, PollResult(410, error="410 Gone", url=URL, gone=True))
    assert new["disabled"] == "1"
    assert due == NOW + DAY


@pytest.mark.parametrize(("failing_for", "disabled"), [(3 * DAY - 1, "0"), (3 * DAY, "1")])
def test_failing_for_three_days_disables(failing_for: float, disabled: str) -> None:
    state = {"errors": "5", "failing_since": repr(NOW - failing_for)}
    new, due = poll(state, PollResult(500, error="500", url=URL))
    assert (new["disabled"], new["errors"]) == (disabled, "6")
    if disabled == "1":
        assert due == NOW + DAY


def test_success_after_errors_reenables() -> None:
    state = {"errors": "9", "disabled": "1", "failing_since": repr(NOW - 5 * DAY)}
    new, due = poll(state, PollResult(200, url=URL))
    assert (new["disabled"], new["errors"], new["failing_since"]) == ("0", "0", "")
    assert new["last_success"] == stamp(NOW)
    assert due == NOW + INTERVAL


@pytest.mark.parametrize("status", [200, 304])
def test_a_permanent_redirect_moves_the_feed_once_confirmed(status: int) -> None:
    moved = "https://example.com/new-feed.xml"
    first, _ = poll({"url": URL}, PollResult(status, url=URL, permanent_url=moved))
    assert (first["url"], first["moved_to"], first["moved_seen"]) == (URL, moved, "1")
    second, _ = poll({"url": URL, **first}, PollResult(status, url=URL, permanent_url=moved))
    assert (second["url"], second["config_url"], second["moved_to"]) == (moved, URL, "")


def test_a_redirect_that_goes_away_or_changes_does_not_move_the_feed() -> None:
    moved = "https://example.com/new-feed.xml"
    first, _ = poll({"url": URL}, PollResult(200, url=URL, permanent_url=moved))
    gone, _ = poll({**first}, PollResult(200, url=URL))  # the next poll is not redirected
    assert (gone["url"], gone["moved_to"], gone["moved_seen"]) == (URL, "", "0")
    other, _ = poll({**first}, PollResult(200, url=URL, permanent_url=moved + "?v=2"))
    assert (other["url"], other["moved_to"], other["moved_seen"]) == (URL, moved + "?v=2", "1")
    # A failed poll in between neither confirms nor forgets the pending move.
    failed, _ = poll({**first}, PollResult(500, error="500", url=URL))
    assert "moved_to" not in failed and failed["url"] == URL


def test_url_falls_back_to_the_stored_one_then_the_configured_one() -> None:
    stored = "https://example.com/moved.xml"
    assert poll({"url": stored}, PollResult(None, error="x"))[0]["url"] == stored
    assert poll({}, PollResult(None, error="x"))[0]["url"] == URL


# -- adaptive interval ---------------------------------------------------------

MINUTE, HOUR = 60.0, 3600.0


@pytest.mark.parametrize(
    ("times", "gap"),
    [
        ([], None),
        ([NOW - 60, NOW - 120], None),  # two posts tell no pace
        ([NOW - 3 * MINUTE * k for k in range(10)], 3 * MINUTE),  # a wire
        ([NOW - HOUR * k for k in range(1, 6)], HOUR),  # hourly; quiet for one gap
        ([NOW - 7 * DAY * k for k in range(1, 5)], 7 * DAY),  # weekly
        # one burst of three and one long pause do not swing the median
        ([NOW, NOW - 10, NOW - 20, NOW - HOUR, NOW - 2 * HOUR, NOW - 3 * HOUR,
          NOW - 30 * HOUR], 3590.0),
        ([NOW - 10 * HOUR - 5 * MINUTE * k for k in range(6)], 5 * HOUR),  # quiet: half the silence
        ([NOW, NOW, NOW, NOW - 60], None),  # the same date on every entry: not a pace
        ([NOW + 2 * DAY, NOW - 60, NOW - 120], None),  # a date in the future is ignored
    ],
)
def test_publish_gap(times: list[float], gap: float | None) -> None:
    assert publish_gap(times, NOW) == gap


@pytest.mark.parametrize(
    ("gap", "interval"),
    [(3 * MINUTE, ADAPTIVE_MIN), (HOUR, HOUR / 2), (DAY, DAY / 2), (7 * DAY, ADAPTIVE_MAX)],
)
def test_adaptive_interval_is_half_the_gap_within_bounds(gap: float, interval: float) -> None:
    times = [NOW - gap * k for k in range(8)]
    assert adaptive_interval(times, NOW) == interval
    assert adaptive_interval(times, NOW, bounds=(10.0, 30 * DAY)) == gap / 2


@pytest.mark.parametrize(
    ("kwargs", "delay", "reason"),
    [
        ({}, INTERVAL, "interval"),
        ({"adaptive": 300.0}, 300.0, "adaptive"),
        ({"adaptive": 300.0, "hint": 600.0}, 600.0, "publisher"),  # max-age is a floor
        ({"adaptive": 3600.0, "hint": 600.0}, 3600.0, "adaptive"),
        ({"hint": 600.0}, 600.0, "publisher"),
        ({"adaptive": 300.0, "errors": 3}, 1200.0, "backoff"),
        ({"errors": 1, "retry_after": 3600.0}, 3600.0, "retry-after"),
        ({"retry_after": 60.0}, INTERVAL, "interval"),
        ({"disabled": True, "adaptive": 300.0}, DAY, "disabled"),
    ],
)
def test_plan_next_says_why(kwargs: dict[str, Any], delay: float, reason: str) -> None:
    assert plan_next(NOW, interval=INTERVAL, **kwargs) == (NOW + delay, reason)


def entries(*published: float | None) -> tuple[FeedEntry, ...]:
    return tuple(
        FeedEntry(feed="f", link=f"{URL}/{i}", canonical_url=f"{URL}/{i}", guid=str(i),
                  published=stamp(p) if p is not None else "")
        for i, p in enumerate(published)
    )


def test_a_wire_is_polled_sooner_than_the_default_and_a_weekly_later() -> None:
    wire = PollResult(200, url=URL, entries=entries(*(NOW - 4 * MINUTE * k for k in range(10))))
    weekly = PollResult(200, url=URL, entries=entries(*(NOW - 7 * DAY * k for k in range(4))))
    _, wire_due = apply_result({}, wire, now=NOW, config_url=URL, interval=INTERVAL,
                               adaptive=True)
    _, weekly_due = apply_result({}, weekly, now=NOW, config_url=URL, interval=INTERVAL,
                                 adaptive=True)
    assert wire_due == NOW + ADAPTIVE_MIN < NOW + INTERVAL < weekly_due == NOW + ADAPTIVE_MAX
    # A configured interval is honoured as given, whatever the pace.
    _, fixed = apply_result({}, wire, now=NOW, config_url=URL, interval=INTERVAL)
    assert fixed == NOW + INTERVAL


def test_the_history_is_kept_across_polls_and_304s() -> None:
    state, _ = apply_result({}, PollResult(200, url=URL, entries=entries(NOW - 600, NOW - 1200)),
                            now=NOW, config_url=URL, interval=INTERVAL, adaptive=True)
    assert state["published_times"] == f"{int(NOW - 600)} {int(NOW - 1200)}"
    assert state["reason"] == "interval"  # two posts: no pace yet, the default holds
    later = NOW + 900
    state2, due = apply_result(
        state, PollResult(200, url=URL, entries=entries(NOW, NOW - 600)),
        now=later, config_url=URL, interval=INTERVAL, adaptive=True,
    )
    assert state2["published_times"].split() == [
        str(int(t)) for t in (NOW, NOW - 600, NOW - 1200)]
    assert (due, state2["reason"]) == (later + ADAPTIVE_MIN, "adaptive")
    state3, due3 = apply_result({**state, **state2}, PollResult(304, url=URL),
                                now=later + 300, config_url=URL, interval=INTERVAL,
                                adaptive=True)
    assert state3["published_times"] == state2["published_times"]
    assert due3 == later + 300 + ADAPTIVE_MIN


def test_undated_entries_count_as_published_when_first_seen() -> None:
    state: dict[str, str] = {}
    for k in range(3):
        now = NOW + k * 1800
        result = PollResult(200, url=URL, entries=entries(None), new_entries=1)
        new, due = apply_result(state, result, now=now, config_url=URL, interval=INTERVAL,
                                adaptive=True)
        state = {**state, **new}
    assert (due - now, state["reason"]) == (900.0, "adaptive")  # half of 30 minutes
    seen_again = PollResult(200, url=URL, entries=entries(None), new_entries=0)
    new, _ = apply_result(state, seen_again, now=now + 60, config_url=URL, interval=INTERVAL,
                          adaptive=True)
    assert new["published_times"] == state["published_times"]


def test_a_feed_that_dates_every_entry_with_the_time_it_was_generated_has_no_pace() -> None:
    state: dict[str, str] = {}
    for k in range(6):
        now = NOW + k * 900
        # Three old entries, all stamped 'now' on every fetch, none of them new.
        result = PollResult(200, url=URL, entries=entries(now, now, now), new_entries=0)
        new, due = apply_result(state, result, now=now, config_url=URL, interval=INTERVAL,
                                adaptive=True)
        state = {**state, **new}
    assert state["published_times"] == ""
    assert (due - now, state["reason"]) == (INTERVAL, "interval")
