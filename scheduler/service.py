"""The scheduler's loop: ``tick(now)`` polls the due feeds and enqueues new entries.

One httpx client, one Redis pool and one RQ queue per process. Feeds are polled
concurrently on a thread pool, at most ``per_host_concurrency`` at a time per
host. Whether a feed is due lives in Redis (``news:feeds:due``), and a feed is
claimed with a lease before it is polled, so several schedulers can run against
one Redis: each feed is still polled once per interval.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.serializers import JSONSerializer

from newswire import metrics
from newswire.errors import FetchError, HTTPStatusError, ParseError
from newswire.feeds import FeedsFile, parse_feed
from newswire.http import Fetcher
from newswire.model import FeedConfig, FeedEntry
from newswire.schema import job_id
from newswire.settings import Settings
from newswire.store import Store
from newswire.urls import host_of

from .policy import POLL_LEASE, PollResult, apply_result

log = logging.getLogger("newswire.scheduler")

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
#: The worker's job. A string, so the scheduler never imports the worker.
INGEST_JOB = "worker.jobs.ingest"
#: RQ retries a job that raised (transient fetch failures) after these many seconds.
RETRY_INTERVALS = [10, 60, 300]


@dataclass
class TickReport:
    """What one tick did."""

    polled: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    enqueued: int = 0
    errors: dict[str, str] = field(default_factory=dict)


class Scheduler:
    """Polls due feeds and enqueues one RQ job per entry never seen before."""

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
        self.fetcher = fetcher or Fetcher(settings)
        self.queue = Queue(settings.queue_name, connection=client, serializer=JSONSerializer)
        self.feeds_file = FeedsFile(settings.feeds_path)
        self.rng = rng
        self._pool = ThreadPoolExecutor(settings.poll_concurrency, thread_name_prefix="poll")
        self._hosts: defaultdict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(settings.per_host_concurrency)
        )
        self._hosts_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.fetcher.close()

    # -- one tick --------------------------------------------------------------

    def due_feeds(self, now: float) -> list[FeedConfig]:
        feeds = self.feeds_file.load()
        self.store.forget_feeds_except(f.name for f in feeds)
        due_at = self.store.due_times([f.name for f in feeds])
        return [f for f in feeds if due_at[f.name] is None or due_at[f.name] <= now]  # type: ignore[operator]

    def next_due(self) -> float | None:
        """The earliest next-check time of any configured feed."""
        times = self.store.due_times([f.name for f in self.feeds_file.load()])
        known = [t for t in times.values() if t is not None]
        return min(known) if len(known) == len(times) and known else None

    def tick(self, now: float) -> TickReport:
        """Poll every feed due at ``now`` (claimed first, so no other scheduler does)."""
        report = TickReport()
        claimed = [
            feed for feed in self.due_feeds(now)
            if self.store.claim_feed(feed.name, now, now + POLL_LEASE)
        ]
        futures = {feed.name: self._pool.submit(self.poll_feed, feed, now) for feed in claimed}
        for name, future in futures.items():
            result, enqueued = future.result()
            metrics.observe_poll(result.status)
            metrics.ENTRIES_ENQUEUED.inc(enqueued)
            report.polled += 1
            report.statuses[str(result.status or "error")] += 1
            report.enqueued += enqueued
            if result.error:
                report.errors[name] = result.error
        self.store.incr_stats({
            "feeds_polled": report.polled,
            "feeds_not_modified": report.statuses.get("304", 0),
            "feed_errors": len(report.errors),
            "entries_enqueued": report.enqueued,
        })
        return report

    # -- one feed --------------------------------------------------------------

    def _host_slot(self, url: str) -> threading.BoundedSemaphore:
        with self._hosts_lock:
            return self._hosts[host_of(url)]

    def poll_feed(self, feed: FeedConfig, now: float) -> tuple[PollResult, int]:
        """Fetch, parse and enqueue one feed; record its state. Never raises for
        the feed's own faults: they become its ``last_error``."""
        state = self.store.feed_state(feed.name)
        same_url = state.get("config_url") == feed.url
        url = (state.get("url") if same_url else None) or feed.url
        conditional: dict[str, str] = {}
        if same_url and state.get("etag"):
            conditional["If-None-Match"] = state["etag"]
        if same_url and state.get("last_modified"):
            conditional["If-Modified-Since"] = state["last_modified"]
        enqueued = 0
        try:
            with self._host_slot(url), metrics.FETCH_SECONDS.labels("feed").time():
                response = self.fetcher.get(
                    url, max_bytes=self.settings.feed_max_bytes, headers=conditional,
                    accept=FEED_ACCEPT,
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
                if body_hash != (state.get("body_hash") if same_url else None):
                    parsed = parse_feed(
                        response.body, feed=feed.name, url=response.url,
                        content_type=response.content_type,
                    )
                    entries, waiting = self.capped(parsed.entries)
                    enqueued = self.enqueue(entries)
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
                )
                log.info(
                    "feed %s: %s, %s entries, %d new", feed.name, response.status,
                    len(parsed.entries) if parsed else "unchanged", enqueued,
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
            interval=feed.interval or self.settings.default_interval, jitter=self.rng(),
        )
        new_state["name"] = feed.name
        self.store.save_feed_state(feed.name, new_state, due)
        return result, enqueued

    def capped(self, entries: tuple[FeedEntry, ...]) -> tuple[tuple[FeedEntry, ...], int]:
        """At most ``feed_max_entries`` of the never-seen ``entries``, in document
        order, and how many more never-seen ones wait for a later poll.

        One feed of 10,000 entries must not put 10,000 jobs ahead of every other
        feed's at once; the rest are taken at the next polls, so none is lost.
        """
        limit = self.settings.feed_max_entries
        if not limit or len(entries) <= limit:
            return entries, 0
        fresh = self.store.unseen(entries)
        return tuple(fresh[:limit]), max(len(fresh) - limit, 0)

    def enqueue(self, entries: tuple[FeedEntry, ...]) -> int:
        """Enqueue a job for each entry never seen by guid or canonical URL.

        The job id comes from the canonical URL and RQ's ``unique=True`` makes
        the check-and-save one atomic step, so a second scheduler (or this one,
        retried after a crash) cannot enqueue the same article twice.
        """
        fresh = self.store.unseen(entries)
        marked: list[tuple[FeedEntry, str]] = []
        count = 0
        for entry in fresh:
            jid = job_id(entry.canonical_url)
            try:
                self.queue.enqueue_call(
                    INGEST_JOB,
                    args=[entry.to_payload()],
                    job_id=jid,
                    unique=True,
                    retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                    timeout=int(self.settings.request_timeout * 2 + 60),
                    result_ttl=86_400,
                    failure_ttl=7 * 86_400,
                    description=f"ingest {entry.canonical_url}",
                )
                count += 1
            except DuplicateJobError:
                pass  # already queued, running, or done by another feed or scheduler
            marked.append((entry, jid))
        self.store.mark_seen(marked)
        return count
