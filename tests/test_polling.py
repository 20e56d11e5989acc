"""Polling over simulated hours: ``tick(now)`` with a clock the test moves, against a
loopback server that answers 200/304/301/410/429/500/malformed as told.

Each test asserts the exact simulated times at which each feed was requested.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import redis

from newswire.cli import cmd_feeds
from newswire.errors import ConfigError
from newswire.feeds import FeedsFile
from newswire.settings import Settings
from scheduler.__main__ import run
from scheduler.hosts import HostGate, interleave
from scheduler.policy import stamp
from scheduler.service import Scheduler

from .conftest import Request, Response, Site

T0 = 1_740_000_000.0
HOUR, DAY = 3600.0, 86_400.0
RSS_TYPE = {"Content-Type": "application/rss+xml"}


def rss(base: str, items: list[tuple[str, float | None]], ttl: int | None = None) -> bytes:
    """An RSS document with one item per (slug, published epoch or None)."""
    parts = []
    for slug, published in items:
        date = f"<pubDate>{formatdate(published, usegmt=True)}</pubDate>" if published else ""
        parts.append(f"<item><title>{slug}</title><link>{base}/a/{slug}</link>{date}</item>")
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (f'<rss version="2.0"><channel><title>t</title>{ttl_tag}{"".join(parts)}'
            "</channel></rss>").encode()


class Clock:
    """The simulated 'now', shared with route handlers that publish by it."""

    def __init__(self) -> None:
        self.now = T0


@pytest.fixture
def clock() -> Clock:
    return Clock()


def feeds_file(path: Path, feeds: dict[str, tuple[str, int | None]]) -> None:
    text = ""
    for name, (url, interval) in feeds.items():
        text += f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n'
        text += f"interval = {interval}\n\n" if interval else "\n"
    path.write_text(text)


@pytest.fixture
def scheduler(settings: Settings, redis_url: str) -> Iterator[Scheduler]:
    with open_scheduler(settings, redis_url, rng=lambda: 0.5) as s:  # jitter 0.5: exact times
        yield s


@contextmanager
def open_scheduler(settings: Settings, redis_url: str, **options: Any) -> Iterator[Scheduler]:
    """A scheduler on a client of its own, both closed on the way out."""
    client = redis.Redis.from_url(redis_url)
    s = Scheduler(settings, client, **options)
    try:
        yield s
    finally:
        s.close()
        client.close()


def run_for(
    scheduler: Scheduler, site: Site, clock: Clock, seconds: float, step: float = 60.0,
    *, at: Callable[[float], None] | None = None,
) -> dict[str, list[float]]:
    """Tick every ``step`` simulated seconds for ``seconds``; the simulated offsets
    from T0 at which each path was requested. ``at(offset)`` runs before each tick."""
    seen: dict[str, list[float]] = {}
    offset = 0.0
    while offset < seconds:
        clock.now = T0 + offset
        if at:
            at(offset)
        before = len(site.requests)
        scheduler.tick(clock.now)
        for request in site.requests[before:]:
            seen.setdefault(request.path, []).append(offset)
        offset += step
    return seen


def feeds_json(settings: Settings) -> dict[str, dict[str, Any]]:
    """What ``newswire feeds --json`` prints, by feed name."""
    out = io.StringIO()
    assert cmd_feeds(argparse.Namespace(json=True, feeds_command=None), settings, out) == 0
    return {d["name"]: d for d in map(json.loads, out.getvalue().splitlines())}


def test_429_with_retry_after_is_not_polled_again_for_an_hour(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    answers = iter([Response(429, {"Retry-After": "3600"})])

    def limited(request: Request) -> Response:
        return next(answers, Response(200, RSS_TYPE, rss(site.base, [("x", None)])))

    site.routes["/limited"] = limited
    site.routes["/calm"] = Response(200, RSS_TYPE, rss(site.base, [("y", None)]))
    feeds_file(settings.feeds_path, {"limited": (site.url("/limited"), 900),
                                     "calm": (site.url("/calm"), 900)})
    seen = run_for(scheduler, site, clock, 1.5 * HOUR)
    assert seen["/limited"] == [0, 3600, 4500]  # the 429's hour, then the interval again
    assert seen["/calm"] == [0, 900, 1800, 2700, 3600, 4500]  # the other feed is unaffected



def test_feeds_json_shows_a_429_as_contract_md_lists_it(
    site: Site, settings: Settings, scheduler: Scheduler
) -> None:
    site.routes["/limited"] = Response(429, {"Retry-After": "3600"})
    feeds_file(settings.feeds_path, {"limited": (site.url("/limited"), 900)})
    scheduler.tick(T0)
    state = feeds_json(settings)["limited"]
    assert {k: state[k] for k in ("name", "url", "last_status", "last_success", "next_check",
                                  "errors", "last_error", "disabled")} == {
        "name": "limited", "url": site.url("/limited"), "last_status": 429,
        "last_success": None, "next_check": "2025-02-19T22:20:00Z", "errors": 1,
        "last_error": f"{site.url('/limited')} answered 429", "disabled": False,
    }
    assert stamp(T0 + HOUR) == "2025-02-19T22:20:00Z"
    assert (state["interval"], state["next_check_reason"]) == (3600, "retry-after")


def test_a_failing_feed_is_polled_with_growing_gaps(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    site.routes["/broken"] = Response(500)
    feeds_file(settings.feeds_path, {"broken": (site.url("/broken"), 900)})
    seen = run_for(scheduler, site, clock, 8 * HOUR)
    # gaps of 900 s, doubling: 900, 1800, 3600, 7200, 14400
    assert seen["/broken"] == [0, 900, 2700, 6300, 13500, 27900]
    gaps = [b - a for a, b in zip(seen["/broken"], seen["/broken"][1:], strict=False)]
    assert gaps == sorted(gaps) and len(set(gaps)) == len(gaps)


def test_a_301_moves_the_feed_once_confirmed_and_a_302_does_not(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    site.routes["/old"] = Response(301, {"Location": "/new"})
    site.routes["/new"] = Response(200, RSS_TYPE, rss(site.base, [("n", None)]))
    site.routes["/tmp"] = Response(302, {"Location": "/elsewhere"})
    site.routes["/elsewhere"] = Response(200, RSS_TYPE, rss(site.base, [("e", None)]))
    feeds_file(settings.feeds_path, {"moved": (site.url("/old"), 900),
                                     "temporary": (site.url("/tmp"), 900)})
    seen = run_for(scheduler, site, clock, HOUR)
    assert seen["/old"] == [0, 900]  # seen twice: confirmed
    assert seen["/new"] == [0, 900, 1800, 2700]  # then polled at its new address
    assert seen["/tmp"] == seen["/elsewhere"] == [0, 900, 1800, 2700]
    state = feeds_json(settings)
    assert state["moved"]["url"] == site.url("/new")
    assert state["temporary"]["url"] == site.url("/tmp")


def test_a_301_to_a_broken_target_does_not_move_the_feed(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    site.routes["/old"] = Response(301, {"Location": "/void"})  # /void is a 404
    feeds_file(settings.feeds_path, {"f": (site.url("/old"), 900)})
    seen = run_for(scheduler, site, clock, HOUR)
    assert seen["/old"] == [0, 900, 2700]  # failures back off; the URL stays
    assert scheduler.store.feed_state("f")["url"] == site.url("/old")


def test_410_disables_the_feed_which_is_tried_daily_and_comes_back(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    site.routes["/gone"] = Response(410)
    feeds_file(settings.feeds_path, {"gone": (site.url("/gone"), 900)})

    def revive(offset: float) -> None:
        if offset == 1.5 * DAY:  # the publisher brings it back
            site.routes["/gone"] = Response(200, RSS_TYPE, rss(site.base, [("g", None)]))

    seen = run_for(scheduler, site, clock, 2 * DAY + HOUR, step=300, at=revive)
    assert seen["/gone"] == [0, DAY, 2 * DAY, 2 * DAY + 900, 2 * DAY + 1800, 2 * DAY + 2700]
    state = feeds_json(settings)["gone"]
    assert (state["disabled"], state["errors"], state["last_status"]) == (False, 0, 200)


def test_410_shows_as_disabled(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    site.routes["/gone"] = Response(410)
    feeds_file(settings.feeds_path, {"gone": (site.url("/gone"), None)})
    scheduler.tick(T0)
    state = feeds_json(settings)["gone"]
    assert (state["disabled"], state["last_status"], state["errors"]) == (True, 410, 1)
    assert state["next_check"] == stamp(T0 + DAY)
    assert state["next_check_reason"] == "disabled"
    out = io.StringIO()
    assert cmd_feeds(argparse.Namespace(json=False, feeds_command=None), settings, out) == 0
    assert out.getvalue().split() == [
        "gone", "disabled", "last", "410", "next", stamp(T0 + DAY), "(disabled,", "86400", "s)",
        site.url("/gone"), "last", "error:", f"{site.url('/gone')}", "answered", "410"]


def test_a_malformed_feed_records_an_error_and_keeps_its_last_good_state(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    good = rss(site.base, [("m", None)])
    answers = {0: Response(200, {**RSS_TYPE, "ETag": '"good"'}, good)}

    def flaky(request: Request) -> Response:
        offset = clock.now - T0
        if offset in answers:
            return answers[offset]
        if offset < 2000:
            return Response(200, RSS_TYPE, b"<rss><channel><item><title>broken &")
        if request.headers.get("if-none-match") == '"good"':
            return Response(304, {"ETag": '"good"'})
        return answers[0]

    site.routes["/flaky"] = flaky
    feeds_file(settings.feeds_path, {"flaky": (site.url("/flaky"), 900)})
    seen = run_for(scheduler, site, clock, 2000, step=60)
    assert seen["/flaky"] == [0, 900, 1800]  # 200, malformed, malformed (backoff 900 s)
    state = scheduler.store.feed_state("flaky")
    assert state["errors"] == "2" and state["last_error"].startswith("malformed feed")
    assert state["etag"] == '"good"' and state["last_success"] == stamp(T0)
    clock.now = T0 + 3600
    report = scheduler.tick(clock.now)
    assert report.statuses["304"] == 1  # the last good validators were kept and sent
    assert site.hits("/flaky")[-1].headers["if-none-match"] == '"good"'
    assert scheduler.store.feed_state("flaky")["errors"] == "0"


def test_a_feed_publishing_every_few_minutes_is_polled_more_often_than_a_weekly(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    def wire(request: Request) -> Response:  # a post every 3 minutes, up to now
        last = int(clock.now // 180) * 180
        items = [(f"w{last - 180 * k:.0f}", last - 180 * k) for k in range(20)]
        return Response(200, RSS_TYPE, rss(site.base, items))

    weekly = rss(site.base, [(f"k{k}", T0 - 2 * DAY - 7 * DAY * k) for k in range(5)])
    site.routes["/wire"] = wire
    site.routes["/weekly"] = Response(200, RSS_TYPE, weekly)
    site.routes["/plain"] = Response(200, RSS_TYPE, rss(site.base, [("p", None)]))
    feeds_file(settings.feeds_path, {"wire": (site.url("/wire"), None),
                                     "weekly": (site.url("/weekly"), None),
                                     "plain": (site.url("/plain"), None)})
    seen = run_for(scheduler, site, clock, 6 * HOUR)
    # The wire at the adaptive floor (5 min), the undated feed at the default (15 min),
    # the weekly at the adaptive ceiling (12 h): once in six hours.
    assert seen["/wire"] == [300.0 * k for k in range(72)]
    assert seen["/plain"] == [900.0 * k for k in range(24)]
    assert seen["/weekly"] == [0]
    states = feeds_json(settings)
    assert (states["wire"]["interval"], states["wire"]["next_check_reason"]) == (300, "adaptive")
    assert states["weekly"]["interval"] == 43_200
    assert states["plain"]["next_check_reason"] == "interval"


def test_feeds_removed_from_the_file_stop_and_added_ones_start_without_restart(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    for name in ("a", "b"):
        site.routes[f"/{name}"] = Response(200, RSS_TYPE, rss(site.base, [(name, None)]))
    feeds_file(settings.feeds_path, {"a": (site.url("/a"), 900)})

    def edit(offset: float) -> None:
        if offset == 1200:
            feeds_file(settings.feeds_path, {"b": (site.url("/b"), 900)})
            stamp_ = time.time() + 5  # a new mtime, as an editor's save gives
            os.utime(settings.feeds_path, (stamp_, stamp_))

    seen = run_for(scheduler, site, clock, HOUR, at=edit)
    assert seen["/a"] == [0, 900]
    assert seen["/b"] == [1200, 2100, 3000]
    assert scheduler.store.redis.zrange(scheduler.store.keys.feeds_due, 0, -1) == [b"b"]


# -- politeness per host (real time) ----------------------------------------------------


def test_never_more_than_the_per_host_limit_in_flight(
    settings: Settings, redis_url: str
) -> None:
    sites = [Site("127.0.0.1"), Site("127.0.0.2")]
    in_flight = {s.base: 0 for s in sites}
    most = dict(in_flight)
    overall = {"now": 0, "most": 0}
    lock = threading.Lock()

    def slow(base: str) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            with lock:
                in_flight[base] += 1
                overall["now"] += 1
                most[base] = max(most[base], in_flight[base])
                overall["most"] = max(overall["most"], overall["now"])
            time.sleep(0.15)
            with lock:
                in_flight[base] -= 1
                overall["now"] -= 1
            return Response(200, RSS_TYPE, rss(base, [(request.path[1:], None)]))
        return handler

    feeds: dict[str, tuple[str, int | None]] = {}
    for i, s in enumerate(sites):
        for k in range(6):
            s.routes[f"/f{k}"] = slow(s.base)
            feeds[f"h{i}f{k}"] = (s.url(f"/f{k}"), 900)
    feeds_file(settings.feeds_path, feeds)
    try:
        with open_scheduler(settings.with_(poll_concurrency=16, per_host_concurrency=2),
                            redis_url) as scheduler:
            assert scheduler.tick(T0).polled == 12
    finally:
        for s in sites:
            s.close()
    assert most == {s.base: 2 for s in sites}  # the limit, reached and never passed
    assert overall["most"] == 4  # both hosts at once: the limit is per host


def test_requests_to_one_host_start_at_least_the_spacing_apart(
    settings: Settings, redis_url: str, site: Site
) -> None:
    starts: list[float] = []

    def timed(request: Request) -> Response:
        starts.append(time.monotonic())
        return Response(200, RSS_TYPE, rss(site.base, [(request.path[1:], None)]))

    feeds: dict[str, tuple[str, int | None]] = {}
    for k in range(4):
        site.routes[f"/s{k}"] = timed
        feeds[f"s{k}"] = (site.url(f"/s{k}"), 900)
    feeds_file(settings.feeds_path, feeds)
    with open_scheduler(settings.with_(host_spacing=0.2, per_host_concurrency=4),
                        redis_url) as scheduler:
        assert scheduler.tick(T0).polled == 4
    starts.sort()
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # Seen at the server: the scheduler starts them 0.2 s apart (exactly so on the gate's
    # own clock, test_host_gate_spaces_starts_per_host_on_its_own_clock), but on a busy
    # machine one request can reach the server 10 to 20 ms later than it started.
    assert len(gaps) == 3 and min(gaps) >= 0.15 and sum(gaps) >= 0.55, gaps


def test_polling_settings_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "NEWSWIRE_POLL_CONCURRENCY": "64", "NEWSWIRE_PER_HOST_CONCURRENCY": "1",
        "NEWSWIRE_HOST_SPACING_MS": "250", "NEWSWIRE_MIN_INTERVAL": "120",
        "NEWSWIRE_MAX_INTERVAL": "3600", "NEWSWIRE_OBEY_ROBOTS": "0",
    }, cwd=tmp_path)
    assert (settings.poll_concurrency, settings.per_host_concurrency, settings.host_spacing,
            settings.min_interval, settings.max_interval, settings.obey_robots) == (
        64, 1, 0.25, 120, 3600, False)
    defaults = Settings.from_env({}, cwd=tmp_path)
    assert (defaults.host_spacing, defaults.obey_robots) == (1.0, True)
    with pytest.raises(ConfigError, match="NEWSWIRE_MIN_INTERVAL"):
        Settings.from_env({"NEWSWIRE_MIN_INTERVAL": "7200", "NEWSWIRE_MAX_INTERVAL": "3600"},
                          cwd=tmp_path)


def test_retry_after_as_a_date_is_read_against_the_servers_clock(
    site: Site, settings: Settings, scheduler: Scheduler, clock: Clock
) -> None:
    answers = []

    def limited(request: Request) -> Response:
        if not answers:
            answers.append(clock.now)
            # The server's clock is the simulated one: 'come back in two hours'.
            return Response(503, {"Date": formatdate(clock.now, usegmt=True),
                                  "Retry-After": formatdate(clock.now + 2 * HOUR, usegmt=True)})
        return Response(200, RSS_TYPE, rss(site.base, [("r", None)]))

    site.routes["/limited"] = limited
    feeds_file(settings.feeds_path, {"limited": (site.url("/limited"), 900)})
    seen = run_for(scheduler, site, clock, 3 * HOUR)
    assert seen["/limited"] == [0, 7200, 8100, 9000, 9900]


def test_interleave_takes_hosts_in_turn_and_caps_each() -> None:
    items = ["a1", "a2", "a3", "a4", "b1", "c1", "c2"]
    assert interleave(items, lambda x: x[0], None) == ["a1", "b1", "c1", "a2", "c2", "a3", "a4"]
    assert interleave(items, lambda x: x[0], 2) == ["a1", "b1", "c1", "a2", "c2"]


def test_host_gate_spaces_starts_per_host_on_its_own_clock() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    gate = HostGate(2, 1.5, clock=lambda: now[0], sleep=sleep)
    for host in ("a", "a", "b", "a"):
        with gate.slot(host):
            pass
    # a: at once, then 1.5 s later, then 1.5 s after that; b never waits for a.
    assert slept == [1.5, 1.5]


def test_a_poll_that_crashes_does_not_stop_the_others(
    site: Site, settings: Settings, scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ok", "bad"):
        site.routes[f"/{name}"] = Response(200, RSS_TYPE, rss(site.base, [(name, None)]))
    feeds_file(settings.feeds_path, {"ok": (site.url("/ok"), 900),
                                     "bad": (site.url("/bad"), 900)})
    poll = scheduler.poll_feed

    def crashing(feed: Any, now: float, *state: Any) -> Any:
        if feed.name == "bad":
            raise RuntimeError("a bug")
        return poll(feed, now, *state)

    monkeypatch.setattr(scheduler, "poll_feed", crashing)
    report = scheduler.tick(T0)
    assert report.polled == 1 and report.errors == {"bad": "internal error: RuntimeError: a bug"}
    assert scheduler.tick(T0 + 301).errors == {"bad": "internal error: RuntimeError: a bug"}


def held_feed(site: Site, release: threading.Event) -> Any:
    """A feed route that answers only once ``release`` is set (10 s at most)."""

    def slow(request: Request) -> Response:
        release.wait(10)
        return Response(200, RSS_TYPE, rss(site.base, [("slow", None)]))

    return slow


def test_the_loop_does_not_wait_for_a_slow_feed(
    site: Site, settings: Settings, scheduler: Scheduler
) -> None:
    release = threading.Event()
    site.routes["/slow"] = held_feed(site, release)
    site.routes["/fast"] = Response(200, RSS_TYPE, rss(site.base, [("fast", None)]))
    feeds_file(settings.feeds_path, {"slow": (site.url("/slow"), 60),
                                     "fast": (site.url("/fast"), 60)})
    first = scheduler.tick(T0, wait=False)
    assert first.polled == 0 and scheduler.in_flight == 2
    for _ in range(100):  # the fast one finishes in real time
        if site.hits("/fast") and scheduler._inflight["fast"][1].done():
            break
        time.sleep(0.05)
    second = scheduler.tick(T0 + 60, wait=False)  # reports 'fast', polls it again
    assert second.polled == 1 and second.statuses == {"200": 1}
    assert scheduler.in_flight == 2 and len(site.hits("/slow")) == 1  # not claimed twice
    release.set()
    last = scheduler.tick(T0 + 61, wait=True)  # nothing new is due; waits for both
    assert last.polled == 2 and scheduler.in_flight == 0
    assert len(site.hits("/fast")) == 2 and len(site.hits("/slow")) == 1


def test_polls_in_flight_at_close_record_their_state(
    site: Site, settings: Settings, redis_url: str
) -> None:
    """States are written when a tick collects its polls; close() collects the last ones."""
    release = threading.Event()
    site.routes["/slow"] = held_feed(site, release)
    feeds_file(settings.feeds_path, {"slow": (site.url("/slow"), 60)})
    client = redis.Redis.from_url(redis_url)
    scheduler = Scheduler(settings, client, rng=lambda: 0.5)
    try:
        assert scheduler.tick(T0, wait=False).polled == 0 and scheduler.in_flight == 1
        release.set()
        scheduler.close()
        assert scheduler.store.feed_state("slow")["last_status"] == "200"
        assert scheduler.due.next_time() == T0 + 60  # its lease ended
        assert scheduler.store.stats()["feeds_polled"] == 1
    finally:
        client.close()


def test_once_polls_every_due_feed_in_batches(
    site: Site, settings: Settings, redis_url: str
) -> None:
    feeds: dict[str, tuple[str, int | None]] = {}
    for k in range(5):
        site.routes[f"/b{k}"] = Response(200, RSS_TYPE, rss(site.base, [(f"b{k}", None)]))
        feeds[f"b{k}"] = (site.url(f"/b{k}"), None)
    feeds_file(settings.feeds_path, feeds)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert run(settings.with_(poll_batch=2), once=True) == 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert sorted(r.path for r in site.requests) == [f"/b{k}" for k in range(5)]


def test_a_tick_takes_no_more_of_one_host_than_its_spacing_lets_start_soon(
    settings: Settings, redis_url: str
) -> None:
    sites = [Site("127.0.0.1"), Site("127.0.0.3")]
    release = threading.Event()

    def held(request: Request) -> Response:
        release.wait(10)
        return Response(304)

    feeds: dict[str, tuple[str, int | None]] = {}
    for i, s in enumerate(sites):
        for k in range(15 if i == 0 else 3):
            s.routes[f"/h{k}"] = held
            feeds[f"s{i}h{k}"] = (s.url(f"/h{k}"), 900)
    feeds_file(settings.feeds_path, feeds)
    client = redis.Redis.from_url(redis_url)
    # One second apart per host: ten seconds' worth (10) of a host's feeds per tick.
    scheduler = Scheduler(settings.with_(host_spacing=1.0), client)
    scheduler.gate = HostGate(100, 0.0)  # start them at once here; the cap is what's tested
    try:
        chosen = scheduler.due_feeds(T0)
        assert [f.name for f in chosen][:4] == ["s0h0", "s1h0", "s0h1", "s1h1"]  # interleaved
        assert sum(f.name.startswith("s0") for f in chosen) == 10 and len(chosen) == 13
        scheduler.tick(T0, wait=False)
        assert scheduler.in_flight == 13
        assert scheduler.due_feeds(T0) == []  # the rest of s0 waits for its polls in flight
    finally:
        release.set()
        scheduler.tick(T0, wait=True)
        scheduler.close()
        client.close()
        for s in sites:
            s.close()
    assert scheduler.in_flight == 0


def test_a_feeds_file_replaced_by_rename_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    feeds_file(path, {"a": ("https://a.example/feed", None)})
    loader = FeedsFile(path)
    assert [f.name for f in loader.load()] == ["a"]
    stat = path.stat()
    new = tmp_path / "new.toml"
    feeds_file(new, {"b": ("https://b.example/feed", None)})  # the same size
    os.utime(new, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    new.replace(path)
    assert [f.name for f in loader.load()] == ["b"]
