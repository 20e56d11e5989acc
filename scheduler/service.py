"""The scheduler's loop: ``tick(now)`` polls the due feeds and enqueues new entries.

One httpx client, one Redis pool and one RQ queue per process. Feeds are polled
concurrently on a thread pool, at most ``per_host_concurrency`` at a time per
host and their starts ``host_spacing`` apart (:class:`HostGate`). Whether a
feed is due lives in Redis (``news:feeds:due``, every configured feed with its
next check), and a feed is claimed with a lease before it is polled, so several
schedulers can run against one Redis: each feed is still polled once per
interval. A tick reads only the due feeds, so its cost follows the polls, not
the number of feeds.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import redis

from newswire import metrics
from newswire.errors import FetchError, HTTPStatusError, ParseError
from newswire.feeds import FeedsFile, parse_feed
from newswire.http import Fetcher
from newswire.model import FeedConfig, FeedEntry
from newswire.queueing import enqueue_entries, ingest_queue
from newswire.settings import Settings
from newswire.store import Store
from newswire.urls import host_of

from .due import DueFeeds
from .hosts import HostGate, interleave
from .policy import POLL_LEASE, PollResult, apply_result

log = logging.getLogger("newswire.scheduler")

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
#: Seconds of one host's spaced-out requests that one tick takes on; the rest of
#: that host's due feeds wait for the next tick, so one host cannot hold up a tick.
HOST_TICK_BUDGET = 10.0
#: Seconds between two collections of the polls done, in a tick that waits for its
#: polls (``--once``); the long-running loop ticks as often while polls are in flight.
COLLECT_EVERY = 0.2
#: Simulated seconds between full re-syncs of the due set with the feeds file
#: (a changed file re-syncs at once).
RESYNC_EVERY = 300.0


@dataclass(frozen=True)
class Polled:
    """One poll done: what came of it, the entries never seen before (enqueued when
    the tick collects it, with those of the other polls done by then), and what of the
    feed's state to record (the fields that changed: a poll answered 304 changes three
    or four of fifteen)."""

    result: PollResult
    fresh: tuple[FeedEntry, ...]
    changes: dict[str, str]
    next_check: float


@dataclass
class TickReport:
    """What one tick did."""

    polled: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    enqueued: int = 0
    errors: dict[str, str] = field(default_factory=dict)


class Scheduler:
    """Polls due feeds and enqueues the entries never seen before as RQ jobs."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        *,
        fetcher: Fetcher | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.store = Store(client, settings)
        self.due = DueFeeds(client, self.store.keys)
        self.fetcher = fetcher or Fetcher(settings)
        self.queue = ingest_queue(settings, client)
        self.feeds_file = FeedsFile(settings.feeds_path)
        self.rng = rng
        self.gate = HostGate(settings.per_host_concurrency, settings.host_spacing)
        self._pool = ThreadPoolExecutor(settings.poll_concurrency, thread_name_prefix="poll")
        self._feeds: dict[str, FeedConfig] = {}
        self._synced: tuple[list[FeedConfig] | None, float] = (None, -math.inf)
        #: Where each feed was last polled (after a confirmed move), for its host.
        self._current_url: dict[str, str] = {}
        #: Polls submitted by ticks that did not wait for them: feed -> (host, future).
        self._inflight: dict[str, tuple[str, Future[Polled]]] = {}

    def close(self) -> None:
        """Let the polls in flight finish and record their feeds' states, then close."""
        self._pool.shutdown(wait=True)
        try:
            self._record(self._collect_all())
        except redis.RedisError as e:  # their leases lapse: polled again in 5 minutes
            log.warning("could not record the last polls' feed states: %s", e)
        finally:
            self.fetcher.close()

    def _collect_all(self) -> TickReport:
        report = TickReport()
        self._collect(report, block=True)
        return report

    @property
    def in_flight(self) -> int:
        """Polls submitted and not yet reported by a tick."""
        return len(self._inflight)

    # -- one tick --------------------------------------------------------------

    def sync_feeds(self, now: float) -> dict[str, FeedConfig]:
        """The configured feeds, by name; the due set follows the feeds file as it
        changes (added feeds are due at once, removed ones are no longer polled)."""
        feeds = self.feeds_file.load()
        seen, synced_at = self._synced
        if feeds is not seen or now - synced_at >= RESYNC_EVERY or now < synced_at:
            added, removed = self.due.sync(f.name for f in feeds)
            if feeds is not seen and (added or removed):
                log.info("feeds file: %d feeds, %d added, %d removed", len(feeds), added,
                         removed)
            self._feeds = {f.name: f for f in feeds}
            self._synced = (feeds, now)
        return self._feeds

    def host(self, feed: FeedConfig) -> str:
        return host_of(self._current_url.get(feed.name, feed.url))

    def due_feeds(self, now: float, limit: int | None = None) -> list[FeedConfig]:
        """The feeds due at ``now`` that this tick takes on (at most ``limit``), hosts
        interleaved, none already in flight, and no more of one host's than its
        spacing lets start within :data:`HOST_TICK_BUDGET` (polls in flight count)."""
        feeds = self.sync_feeds(now)
        limit = self.settings.poll_batch if limit is None else limit
        # Read a little more than the limit: some may be in flight or over a host's share.
        names = self.due.due(now, limit + len(self._inflight))
        due = [feeds[name] for name in names if name in feeds and name not in self._inflight]
        spacing = self.settings.host_spacing
        per_host = (
            max(self.settings.per_host_concurrency, int(HOST_TICK_BUDGET / spacing))
            if spacing > 0 else None
        )
        busy = Counter(host for host, _ in self._inflight.values())
        return interleave(due, self.host, per_host, already=busy)[:limit]

    def next_due(self) -> float | None:
        """The earliest next-check time of any configured feed."""
        return self.due.next_time()

    def tick(self, now: float, *, wait: bool = True) -> TickReport:
        """Poll every feed due at ``now`` (claimed first, so no other scheduler does).

        ``wait=False`` (the long-running loop): submit the polls and return; a later
        tick reports them once done, so one slow feed never holds up the next
        feeds that fall due. Then at most twice ``poll_concurrency`` polls are in
        flight, so that none waits in the pool long enough for its lease to lapse.
        """
        report = TickReport()
        self._collect(report, block=False)
        limit = None if wait else max(0, 2 * self.settings.poll_concurrency - self.in_flight)
        due = self.due_feeds(now, limit) if limit != 0 else []
        claimed = self.due.claim([f.name for f in due], now, now + POLL_LEASE)
        # Read in one round trip for the whole tick; only the claim's holder changes them.
        states = self.store.feed_states(claimed)
        for feed in due:
            if feed.name in states:
                future = self._pool.submit(self.poll_feed, feed, now, states[feed.name])
                self._inflight[feed.name] = (self.host(feed), future)
        if wait:
            self._collect(report, block=True)
        self._record(report)
        return report

    def _record(self, report: TickReport) -> None:
        self.store.incr_stats({
            "feeds_polled": report.polled,
            "feeds_not_modified": report.statuses.get("304", 0),
            "feed_errors": len(report.errors),
            "entries_enqueued": report.enqueued,
        })

    def _collect(self, report: TickReport, *, block: bool) -> None:
        """Move finished polls into ``report``: enqueue their new entries together,
        then record their feeds' states, all in one round trip. With ``block``, until
        none is in flight, those done every :data:`COLLECT_EVERY` seconds (so a long
        tick's first entries don't wait for its last poll).

        Entries of several feeds share jobs (up to ``job_batch`` each): a poll
        usually brings a few new entries, and RQ's own bookkeeping costs about 3 ms a
        job whatever it holds. Until its state is recorded a polled feed stays leased
        to this scheduler, so no other polls it; if this one dies first, the lease
        lapses and the feed is polled again with its old validators, so its new
        entries come back (those enqueued and marked seen are not enqueued again;
        a crash between the two can enqueue them a second time, in other batches,
        and the worker then finds them stored).
        """
        while True:
            self._collect_done(report)
            if not block or not self._inflight:
                return
            wait([future for _, future in self._inflight.values()], timeout=COLLECT_EVERY)

    def _collect_done(self, report: TickReport) -> None:
        done: list[tuple[str, dict[str, str], float]] = []
        fresh: dict[str, tuple[FeedEntry, ...]] = {}  # by feed, of those that brought some
        for name, (_, future) in list(self._inflight.items()):
            if not future.done():
                continue
            del self._inflight[name]
            try:
                polled = future.result()
            except Exception as e:  # a bug or Redis failing mid-poll: the others go on
                log.exception("feed %s: poll failed", name)
                report.errors[name] = f"internal error: {type(e).__name__}: {e}"
                continue  # the lease lapses and the feed is polled again
            done.append((name, polled.changes, polled.next_check))
            if polled.fresh:
                fresh[name] = polled.fresh
            result = polled.result
            metrics.observe_poll(result.status)
            report.polled += 1
            report.statuses[str(result.status or "error")] += 1
            if result.error:
                report.errors[name] = result.error
        if fresh:
            failed = self._enqueue_new(fresh, report)
            # Not recorded, so their leases lapse and they are polled again with their
            # old validators: the entries come back.
            done = [d for d in done if d[0] not in failed]
        if done:
            self.store.save_feed_states(done)

    def _enqueue_new(self, fresh: dict[str, tuple[FeedEntry, ...]], report: TickReport
                     ) -> set[str]:
        """Enqueue the new entries of the feeds collected, all together (an entry
        several feeds carry is one job: :meth:`enqueue` keeps one copy); the feeds whose
        entries could not be. Redis failing fails them all; anything else (a bug, an
        entry RQ refuses) is tried again one feed at a time, so it holds up only the
        feed it comes from."""
        failed: dict[str, Exception] = {}
        try:
            enqueued = self.enqueue(tuple(e for entries in fresh.values() for e in entries))
        except Exception as e:
            log.exception("could not enqueue the new entries of %d feeds", len(fresh))
            enqueued = 0
            if isinstance(e, redis.RedisError):
                failed = dict.fromkeys(fresh, e)
            else:
                for name, entries in fresh.items():
                    try:
                        enqueued += self.enqueue(entries)
                    except Exception as one:
                        failed[name] = one
        for name, error in failed.items():
            report.errors[name] = f"internal error: {type(error).__name__}: {error}"
        metrics.ENTRIES_ENQUEUED.inc(enqueued)
        report.enqueued += enqueued
        return set(failed)

    # -- one feed --------------------------------------------------------------

    def poll_feed(
        self, feed: FeedConfig, now: float, state: dict[str, str] | None = None
    ) -> Polled:
        """Fetch and parse one feed; its never-seen entries and new state come back,
        for the tick to enqueue and record. Never raises for the feed's own faults:
        they become its ``last_error``. ``state``: the feed's stored state, if the
        caller has read it already."""
        if state is None:
            state = self.store.feed_state(feed.name)
        same_url = state.get("config_url") == feed.url
        if state and not same_url:
            # The file names another URL now: start afresh, validators and all.
            self.store.redis.delete(self.store.keys.feed(feed.name))
            state = {}
        url = state.get("url") or feed.url
        conditional: dict[str, str] = {}
        if state.get("etag"):
            conditional["If-None-Match"] = state["etag"]
        if state.get("last_modified"):
            conditional["If-Modified-Since"] = state["last_modified"]
        fresh: tuple[FeedEntry, ...] = ()
        try:
            with self.gate.slot(host_of(url)), metrics.FETCH_SECONDS.labels("feed").time():
                response = self.fetcher.get(
                    url, max_bytes=self.settings.feed_max_bytes, headers=conditional,
                    accept=FEED_ACCEPT, robots=False,
                )
            if response.status == 304:
                result = PollResult(
                    status=304, url=url, permanent_url=response.permanent_url,
                    headers=response.headers,
                )
            else:
                body_hash = hashlib.blake2b(response.body, digest_size=16).hexdigest()
                parsed = None
                headers = response.headers
                if body_hash != state.get("body_hash"):
                    parsed = parse_feed(
                        response.body, feed=feed.name, url=response.url,
                        content_type=response.content_type,
                    )
                    fresh, waiting = self.capped(tuple(self.store.unseen(parsed.entries)))
                    if waiting:
                        log.warning(
                            "feed %s: %d more new entries wait for the next poll "
                            "(NEWSWIRE_FEED_MAX_ENTRIES=%d)",
                            feed.name, waiting, self.settings.feed_max_entries,
                        )
                        # Read in full next time: no 304, no "unchanged" by hash.
                        body_hash = "partial:" + body_hash
                        headers = {k: v for k, v in headers.items()
                                   if k not in ("etag", "last-modified")}
                    for reason in parsed.skipped:
                        log.warning("feed %s: skipped %s", feed.name, reason)
                    if parsed.recovered_error:
                        log.warning("feed %s: ill-formed, read what could be read (%s)",
                                    feed.name, parsed.recovered_error)
                result = PollResult(
                    status=response.status, url=url, permanent_url=response.permanent_url,
                    headers=headers, body_hash=body_hash,
                    entries=parsed.entries if parsed else (),
                    ttl_minutes=parsed.ttl_minutes if parsed else None,
                    new_entries=len(fresh),
                )
                log.info(
                    "feed %s: %s, %s entries, %d new", feed.name, response.status,
                    len(parsed.entries) if parsed else "unchanged", len(fresh),
                )
        except (FetchError, ParseError) as e:
            status = e.status if isinstance(e, FetchError) else None
            retry_after = e.retry_after if isinstance(e, HTTPStatusError) else None
            result = PollResult(
                status=status, error=str(e), url=url, retry_after=retry_after,
                gone=status == 410,
            )
            log.warning("feed %s: %s", feed.name, e)
        new_state, due = apply_result(
            state, result, now=now, config_url=feed.url,
            interval=feed.interval or self.settings.default_interval,
            adaptive=feed.interval is None,
            bounds=(float(self.settings.min_interval), float(self.settings.max_interval)),
            jitter=self.rng(),
        )
        if new_state["url"] != url:
            log.info("feed %s: moved permanently to %s", feed.name, new_state["url"])
        new_state["name"] = feed.name
        self._current_url[feed.name] = new_state["url"]
        changes = {k: v for k, v in new_state.items() if state.get(k) != v}
        return Polled(result, fresh, changes, due)

    def capped(self, fresh: tuple[FeedEntry, ...]) -> tuple[tuple[FeedEntry, ...], int]:
        """At most ``feed_max_entries`` of the never-seen entries ``fresh``, in document
        order, and how many more wait for a later poll.

        One feed of 10,000 entries must not put 10,000 jobs ahead of every other
        feed's at once; the rest are taken at the next polls, so none is lost.
        """
        limit = self.settings.feed_max_entries
        if not limit or len(fresh) <= limit:
            return fresh, 0
        return fresh[:limit], len(fresh) - limit

    def enqueue(self, entries: tuple[FeedEntry, ...]) -> int:
        """Enqueue the entries never seen by guid or canonical URL, in batches
        (:mod:`newswire.queueing`); how many were enqueued."""
        placed, enqueued = enqueue_entries(self.queue, self.store.unseen(entries), self.settings)
        self.store.mark_seen(placed)
        return enqueued
