"""The scheduler's tick(now), driven with a clock the test controls."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

import pytest
import redis

from newswire.model import FeedEntry
from newswire.queueing import job_entries
from newswire.settings import Settings
from scheduler import service as scheduler_service
from scheduler.service import Scheduler

from .conftest import Handler, Request, Response, Site, write_feeds

T0 = 1_740_000_000.0  # a fixed 'now'; the scheduler never reads the clock itself
RSS = b"""<rss version="2.0"><channel><title>t</title>
<item><title>One</title><link>%s/a1</link></item></channel></rss>"""


@pytest.fixture
def feeds(site: Site, settings: Settings) -> dict[str, str]:
    urls = {name: site.url(f"/feed/{name}") for name in ("alpha", "beta", "gamma")}
    for name in urls:
        site.routes[f"/feed/{name}"] = Response(
            200, {"Content-Type": "application/rss+xml"}, RSS % site.base.encode())
    path = write_feeds(settings.feeds_path, urls)
    path.write_text(path.read_text().replace('"\n\n', '"\ninterval = 900\n\n'))
    return urls


@pytest.fixture
def schedulers(settings: Settings, redis_url: str) -> Iterator[list[Scheduler]]:
    made = []
    for _ in range(2):
        client = redis.Redis.from_url(redis_url)
        made.append(Scheduler(settings, client, rng=lambda: 0.5))
    yield made
    for s in made:
        s.close()
        s.store.redis.close()


def test_two_schedulers_poll_each_feed_once_per_interval(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler]
) -> None:
    # Both tick every 30 simulated seconds for two hours, at the same moments.
    for step in range(0, 2 * 3600, 30):
        barrier = threading.Barrier(len(schedulers))

        def tick(s: Scheduler, now: float, barrier: threading.Barrier) -> None:
            barrier.wait()
            s.tick(now)

        threads = [threading.Thread(target=tick, args=(s, T0 + step, barrier))
                   for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for name in feeds:
        # 0, 900, ..., 6300: eight intervals in two hours, one poll each.
        assert len(site.hits(f"/feed/{name}")) == 8, name


def test_a_standby_scheduler_takes_over_a_feed_whose_poll_was_abandoned(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler]
) -> None:
    first, standby = schedulers
    # The first scheduler claimed every feed, then died before polling them.
    for name in feeds:
        assert first.due.claim([name], T0, T0 + 300) == [name]
    assert standby.tick(T0 + 10).polled == 0  # the lease holds
    assert standby.tick(T0 + 301).polled == 3  # the lease lapsed: taken over
    assert all(len(site.hits(f"/feed/{n}")) == 1 for n in feeds)


def test_conditional_get_and_304(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler]
) -> None:
    scheduler = schedulers[0]

    def with_etag(request: Request) -> Response:
        if request.headers.get("if-none-match") == '"x"':
            return Response(304, {"ETag": '"x"'})
        return Response(200, {"Content-Type": "application/rss+xml", "ETag": '"x"',
                              "Last-Modified": "Wed, 19 Feb 2025 10:00:00 GMT"},
                        RSS % site.base.encode())

    site.routes["/feed/alpha"] = with_etag
    first = scheduler.tick(T0)
    assert first.statuses["200"] == 3 and first.enqueued == 1  # one article in three feeds
    before = scheduler.store.feed_state("alpha")
    saved: list[tuple[str, Mapping[str, str], float]] = []
    save = scheduler.store.save_feed_states

    def recorded(saves: Sequence[tuple[str, Mapping[str, str], float]]) -> None:
        saved.extend(saves)
        save(saves)

    scheduler.store.save_feed_states = recorded  # type: ignore[method-assign]
    second = scheduler.tick(T0 + 900)
    assert second.statuses["304"] == 1 and second.enqueued == 0
    # Only the fields the 304 changed are written; the validators and the rest stay.
    [(_, changes, _)] = [s for s in saved if s[0] == "alpha"]
    after = scheduler.store.feed_state("alpha")
    assert changes and all(before.get(k) != v for k, v in changes.items())
    assert changes["last_status"] == "304" and "etag" not in changes
    assert after == {**before, **changes} and after["etag"] == '"x"'
    (request,) = site.hits("/feed/alpha")[1:]
    assert request.headers["if-none-match"] == '"x"'
    assert request.headers["if-modified-since"] == "Wed, 19 Feb 2025 10:00:00 GMT"
    assert request.headers["user-agent"].startswith("newswire/")


def collected_at_once(site: Site, feeds: Mapping[str, str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a tick collect the polls of ``feeds`` in one go, as the tests of what their
    entries share need: it waits for all before it collects (``COLLECT_EVERY``), and
    none is done before its first look, the feeds answering after 0.2 s. Otherwise a
    slow machine may see one poll done before the others are, and collect it alone."""
    monkeypatch.setattr(scheduler_service, "COLLECT_EVERY", 10.0)
    for name in feeds:
        route = site.routes[f"/feed/{name}"]

        def later(request: Request, route: Response | Handler = route) -> Response:
            time.sleep(0.2)
            return route(request) if callable(route) else route

        site.routes[f"/feed/{name}"] = later


def test_new_entries_of_the_feeds_of_a_tick_share_jobs(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each feed brings two entries of its own, and all three carry one in common.
    for name in feeds:
        site.routes[f"/feed/{name}"] = Response(200, {"Content-Type": "application/rss+xml"}, (
            "<rss version='2.0'><channel><title>t</title>" + "".join(
                f"<item><title>{n}</title><link>{site.base}/{n}</link></item>"
                for n in (f"{name}-1", f"{name}-2", "common")) + "</channel></rss>").encode())
    collected_at_once(site, feeds, monkeypatch)
    scheduler = schedulers[0]
    report = scheduler.tick(T0)
    assert report.polled == 3 and report.enqueued == 7
    jobs = scheduler.queue.get_jobs()
    assert len(jobs) == 1  # no worker registered: one share, one job of the tick's seven
    assert jobs[0].description == "ingest 7 entries of alpha, beta, gamma"
    assert sorted(p["link"].rsplit("/", 1)[1] for p in job_entries(jobs[0])) == [
        "alpha-1", "alpha-2", "beta-1", "beta-2", "common", "gamma-1", "gamma-2"]
    assert scheduler.tick(T0 + 900).enqueued == 0  # all seen now


def test_an_entry_two_feeds_carry_is_enqueued_whichever_copy_is_seen(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # alpha and beta carry one article under guids of their own; alpha's guid is marked
    # seen (another scheduler, another URL) after the polls and before the tick
    # enqueues: beta's copy must still be enqueued.
    for name in ("alpha", "beta"):
        site.routes[f"/feed/{name}"] = Response(200, {"Content-Type": "application/rss+xml"}, (
            f"<rss version='2.0'><channel><title>t</title><item><title>x</title>"
            f"<link>{site.base}/shared</link><guid isPermaLink='false'>{name}-guid</guid>"
            "</item></channel></rss>").encode())
    collected_at_once(site, feeds, monkeypatch)
    scheduler = schedulers[0]
    enqueue = scheduler.enqueue

    def after_another_scheduler(entries: tuple[FeedEntry, ...]) -> int:
        [alpha] = [e for e in entries if e.guid == "alpha-guid"]
        scheduler.store.mark_seen([(replace(alpha, canonical_url="https://else.example/"),
                                    "article-elsewhere")])
        return enqueue(entries)

    scheduler.enqueue = after_another_scheduler  # type: ignore[method-assign]
    assert scheduler.tick(T0).enqueued == 2  # and gamma's own article
    [job] = scheduler.queue.get_jobs()
    assert [p["guid"] for p in job_entries(job) if "guid" in p["guid"]] == ["beta-guid"]


def test_entries_that_could_not_be_enqueued_come_back_at_the_next_poll(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler]
) -> None:
    scheduler = schedulers[0]
    site.routes["/feed/beta"] = Response(500)
    enqueue = scheduler.enqueue

    def failing(entries: tuple[FeedEntry, ...]) -> int:
        raise RuntimeError("queue gone")

    scheduler.enqueue = failing  # type: ignore[method-assign]
    report = scheduler.tick(T0)
    assert report.polled == 3 and report.enqueued == 0
    assert "queue gone" in report.errors["alpha"] and "queue gone" in report.errors["gamma"]
    # Their states were not recorded: still leased, then polled again, entries and all.
    assert scheduler.store.feed_state("alpha") == {}
    assert scheduler.store.feed_state("beta")["last_status"] == "500"
    scheduler.enqueue = enqueue  # type: ignore[method-assign]
    again = scheduler.tick(T0 + 301)  # the five-minute lease has lapsed
    assert again.polled == 2 and again.enqueued == 1 and not again.errors


def test_a_feed_whose_entries_cannot_be_enqueued_holds_up_only_itself(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler]
) -> None:
    for name in feeds:
        site.routes[f"/feed/{name}"] = Response(200, {"Content-Type": "application/rss+xml"}, (
            f"<rss version='2.0'><channel><title>t</title><item><title>x</title>"
            f"<link>{site.base}/{name}-1</link></item></channel></rss>").encode())
    scheduler = schedulers[0]
    enqueue = scheduler.enqueue

    def refusing_alpha(entries: tuple[FeedEntry, ...]) -> int:
        if any(e.feed == "alpha" for e in entries):
            raise ValueError("an entry RQ refuses")
        return enqueue(entries)

    scheduler.enqueue = refusing_alpha  # type: ignore[method-assign]
    report = scheduler.tick(T0)
    assert report.enqueued == 2 and set(report.errors) == {"alpha"}
    assert scheduler.store.feed_state("alpha") == {}  # polled again once its lease lapses
    assert scheduler.store.feed_state("beta")["last_status"] == "200"


def test_a_tick_that_waits_enqueues_its_fast_feeds_before_its_slowest_is_done(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler]
) -> None:
    scheduler = schedulers[0]
    for name in ("beta", "gamma"):
        site.routes[f"/feed/{name}"] = Response(200, {"Content-Type": "application/rss+xml"}, (
            f"<rss version='2.0'><channel><title>t</title><item><title>x</title>"
            f"<link>{site.base}/{name}-1</link></item></channel></rss>").encode())
    queued_meanwhile: list[int] = []

    def slow(request: Request) -> Response:  # answers once the others are enqueued
        deadline = time.monotonic() + 5
        while scheduler.queue.count < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        queued_meanwhile.append(scheduler.queue.count)
        return Response(304)

    site.routes["/feed/alpha"] = slow
    report = scheduler.tick(T0)  # as --once does
    assert report.polled == 3 and report.enqueued == 2
    assert queued_meanwhile and queued_meanwhile[0] >= 1


def test_one_bad_feed_never_stops_the_others(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler]
) -> None:
    site.routes["/feed/alpha"] = Response(200, {"Content-Type": "application/rss+xml"},
                                          b"<rss><channel><item><title>x &")
    site.routes["/feed/beta"] = Response(500)
    report = schedulers[0].tick(T0)
    assert report.polled == 3 and set(report.errors) == {"alpha", "beta"}
    assert report.enqueued == 1
    state = schedulers[0].store.feed_state("alpha")
    assert state["errors"] == "1" and "malformed" in state["last_error"]


def test_feeds_added_to_the_file_are_picked_up_without_restart(
    site: Site, feeds: dict[str, str], schedulers: list[Scheduler], settings: Settings
) -> None:
    scheduler = schedulers[0]
    assert scheduler.tick(T0).polled == 3
    site.routes["/feed/delta"] = site.routes["/feed/alpha"]
    with settings.feeds_path.open("a") as f:
        f.write(f'[[feeds]]\nname = "delta"\nurl = "{site.url("/feed/delta")}"\n')
    os.utime(settings.feeds_path, (T0, T0))  # a new mtime, as an editor's save gives
    report = scheduler.tick(T0 + 60)
    assert report.polled == 1 and len(site.hits("/feed/delta")) == 1
