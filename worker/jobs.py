"""The RQ jobs: feed entries in, stored articles out.

For each entry: fetch the page → clean it → drop the site's learned boilerplate →
fingerprint → commit (one Lua script, which also counts the page's paragraphs for
its site, and checks the learned boilerplate the worker remembered). A page that
can't be fetched or gives no text is replaced by the feed's own content, and the
article says so (``source=feed``, ``fetch_error``).

``ingest`` takes one entry: transient failures raise while RQ has retries left
(``Retry`` with backoff); a job with nothing to store fails with its reason in
RQ's failed registry. ``ingest_batch`` takes several (:mod:`newswire.queueing`):
it fetches a round of pages, cleans them, then commits them one by one, and hands
an entry it can't store at once to an ``ingest`` job of its own.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any

import redis
from rq import get_current_job

from newswire import metrics
from newswire.clean import clean_feed_entry, clean_response
from newswire.errors import ExtractError, FetchError, TransientFetchError
from newswire.fingerprint import fingerprint
from newswire.http import PAGE_ACCEPT
from newswire.model import (
    ArticleRecord,
    CleanedArticle,
    CommitResult,
    FeedEntry,
    FetchedResponse,
    iso,
)
from newswire.profiles import profiles_for
from newswire.queueing import enqueue_one, ingest_queue
from newswire.schema import article_id
from newswire.store import Commit
from newswire.urls import InvalidURL, canonicalize, host_of

from .runtime import current

log = logging.getLogger("newswire.worker")


def _retries_left() -> bool:
    job = get_current_job()
    return bool(job is not None and job.retries_left)


def _no_retry() -> None:
    """A failure that a retry cannot mend: go straight to the failed registry."""
    job = get_current_job()
    if job is not None:
        job.retries_left = 0


def page_canonical(cleaned: CleanedArticle, fetched_url: str) -> str:
    """The page's own canonical URL, trusted only on the host that served it
    (a page must not claim to be another site's article)."""
    try:
        claimed = canonicalize(cleaned.canonical_url) if cleaned.canonical_url else ""
    except InvalidURL:
        return ""
    return claimed if claimed and host_of(claimed) == host_of(fetched_url) else ""


def build_record(
    entry: FeedEntry,
    cleaned: CleanedArticle,
    *,
    now: datetime,
    fetched_url: str,
    fetch_error: str = "",
    blocks: tuple[str, ...] = (),
    learned_blocks: tuple[str, ...] = (),
    learned_removed: int = 0,
) -> ArticleRecord:
    """The article to commit, from what the feed said and what the cleaner made."""
    return ArticleRecord(
        id=article_id(entry.canonical_url),
        url=entry.link,
        canonical_url=entry.canonical_url,
        feed=entry.feed,
        title=cleaned.title or entry.title,
        text=cleaned.text,
        published=cleaned.published or entry.published or iso(now),
        fetched=iso(now),
        fingerprint=fingerprint(cleaned.text),
        guid=entry.guid,
        authors=cleaned.authors or entry.authors,
        language=cleaned.language,
        image=cleaned.image,
        source=cleaned.source,
        fetch_error=fetch_error,
        page_canonical_url=page_canonical(cleaned, fetched_url) if cleaned.source == "page" else "",
        site=cleaned.site,
        profile=cleaned.profile,
        blocks=blocks,
        learned_blocks=learned_blocks,
        learned_removed=learned_removed,
    )


def fetch(entry: FeedEntry) -> FetchedResponse | FetchError:
    """The entry's page, or the error that kept it (thread-safe: batches prefetch)."""
    runtime = current()
    try:
        with metrics.FETCH_SECONDS.labels("page").time():
            return runtime.fetcher.get(
                entry.canonical_url, max_bytes=runtime.settings.page_max_bytes,
                accept=PAGE_ACCEPT,
            )
    except FetchError as e:
        return e


#: Seconds from which a page's fetch is worth overlapping with the fetches of others:
#: the network, not the worker, sets the pace. Pages that come faster (a site next
#: door) are fetched in turn: threads would cost more CPU, in the GIL's hand-offs,
#: than the wait they hide (600 loopback pages in one worker: 5.2 s with four pages
#: in flight, 4.4 s one at a time).
SLOW_FETCH = 0.05


#: Hosts a worker remembers the pace of (:func:`prefetched`).
HOSTS_KEPT = 1024


def _timed_fetch(entry: FeedEntry) -> tuple[FetchedResponse | FetchError, float]:
    started = time.monotonic()
    return fetch(entry), time.monotonic() - started


def _paced(
    slow_hosts: dict[str, bool], entry: FeedEntry,
    timed: tuple[FetchedResponse | FetchError, float],
) -> tuple[FeedEntry, FetchedResponse | FetchError]:
    """The entry and its page, its host's pace remembered (the most recent last)."""
    host = host_of(entry.canonical_url)
    slow_hosts.pop(host, None)
    slow_hosts[host] = timed[1] >= SLOW_FETCH
    if len(slow_hosts) > HOSTS_KEPT:
        del slow_hosts[next(iter(slow_hosts))]
    return entry, timed[0]


def prefetched(
    entries: Sequence[FeedEntry], ahead: int, slow_hosts: dict[str, bool]
) -> Iterator[tuple[FeedEntry, FetchedResponse | FetchError] | None]:
    """Each entry with its page, in order: fetched one at a time while pages come
    fast; from the first entry whose host's last page was slow (:data:`SLOW_FETCH`;
    in this batch or an earlier one: ``slow_hosts``), the rest up to ``ahead`` pages in
    advance on threads, so that their waits overlap, and a None before a page that is
    still on its way: what came before it can be worked on meanwhile."""
    pending = iter(entries)
    for entry in pending:
        if ahead > 0 and slow_hosts.get(host_of(entry.canonical_url)):
            pending = chain((entry,), pending)
            break
        yield _paced(slow_hosts, entry, _timed_fetch(entry))
    else:
        return
    with ThreadPoolExecutor(ahead, thread_name_prefix="fetch") as pool:
        window = deque((e, pool.submit(_timed_fetch, e)) for e in islice(pending, ahead))
        while window:
            entry, future = window.popleft()
            if (following := next(pending, None)) is not None:
                window.append((following, pool.submit(_timed_fetch, following)))
            if not future.done():
                yield None
            yield _paced(slow_hosts, entry, future.result())


#: Bytes of pages at which a batch's round ends: it fetches pages until they reach this
#: (or the batch ends, or the next page is still on its way), cleans them all, commits
#: them all, then goes on. A round holds less than this plus its last page
#: (``NEWSWIRE_PAGE_MAX_BYTES`` at most).
ROUND_BYTES = 8 * 1024 * 1024

Fetched = tuple[FeedEntry, FetchedResponse | FetchError]


def rounds(pages: Iterable[Fetched | None], max_bytes: int) -> Iterator[list[Fetched]]:
    """``pages`` in consecutive rounds, each ended by the page whose body brings it
    to ``max_bytes`` (so a bigger page ends a round of its own), by a None (the next
    page is still on its way: the round is worked on while it comes) or by the last
    page."""
    held: list[Fetched] = []
    size = 0
    for page in pages:
        if page is not None:
            held.append(page)
            size += len(page[1].body) if isinstance(page[1], FetchedResponse) else 0
        if held and (page is None or size >= max_bytes):
            yield held
            held, size = [], 0
    if held:
        yield held


def clean_fetched(
    entry: FeedEntry, fetched: FetchedResponse | FetchError, *, retry_later: bool
) -> tuple[CleanedArticle | None, str, str]:
    """The cleaned page: (article or None, final URL, why not). A transient failure
    is raised instead when it is to be tried again later."""
    if isinstance(fetched, TransientFetchError) and retry_later:
        raise fetched
    if isinstance(fetched, FetchError):
        return None, entry.canonical_url, str(fetched)
    try:
        with metrics.EXTRACT_SECONDS.time():
            cleaned = clean_response(
                fetched, entry=entry, profiles=profiles_for(current().settings.profiles_dir)
            )
    except ExtractError as e:
        return None, fetched.url, str(e)
    return cleaned, fetched.url, ""


def ingest(payload: dict[str, Any]) -> dict[str, str]:
    """RQ job: store the article behind one feed entry (idempotent)."""
    try:
        entry = FeedEntry.from_payload(payload)
        stored = current().store.stored_id(entry.canonical_url)
        if stored:
            return {"result": "exists", "id": stored}
        return store_entry(entry, fetch(entry), retry_later=_retries_left())
    except Exception as e:
        if isinstance(e, ExtractError):  # nothing to store: a retry cannot mend that
            _no_retry()
        metrics.JOB_FAILURES.labels(type(e).__name__).inc()
        raise


def ingest_batch(payloads: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """RQ job: the articles behind a batch of feed entries, each committed on its own
    (idempotent). An entry that can't be stored now (its page failed for the time
    being, it has nothing to store, an error) goes back to the queue as a job of its
    own, with RQ's retries and failed registry.

    Each stage runs over a round of pages (:func:`rounds`) before the next: a stage
    run page after page keeps its code and data in the CPU's caches, where one page
    through all stages evicts them (600 loopback pages in one process, batches of
    16: 4.8 ms of CPU an article page by page, 3.9 ms in rounds). The commits stay
    in order, one after the other: each sees the ones before. But an article's
    record is made while Redis runs the commit script's first call of the one before,
    and its probe while Redis runs that one's next call, when its candidates asked for
    one (:class:`newswire.store.Commit`): each reply is read only then."""
    runtime = current()
    entries = [FeedEntry.from_payload(p) for p in payloads]
    stored = runtime.store.stored_ids([e.canonical_url for e in entries])
    results = [{"url": e.canonical_url, "result": "exists", "id": sid}
               for e, sid in zip(entries, stored, strict=True) if sid]
    todo = [e for e, sid in zip(entries, stored, strict=True) if not sid]
    incoming = prefetched(todo, runtime.settings.fetch_ahead, runtime.slow_hosts)
    for pages in rounds(incoming, ROUND_BYTES):
        sent: tuple[FeedEntry, Commit | Exception] | None = None
        for entry, cleaned in [(entry, _cleaned(entry, fetched)) for entry, fetched in pages]:
            commit = _started(entry, cleaned)
            if sent is not None and isinstance(sent[1], Commit):
                sent[1].advance()  # its candidates verified, its next call sent
            commit = _prepared(commit)
            if sent is not None:
                results.append(_settled(*sent))
            if isinstance(commit, Commit):
                commit.send()
            sent = (entry, commit)
        if sent is not None:
            results.append(_settled(*sent))
    return {"results": results}


def _started(
    entry: FeedEntry, cleaned: tuple[CleanedArticle | None, str, str] | Exception
) -> Commit | Exception:
    """The entry's commit, started (:func:`start_commit`: no Redis yet), or what kept it
    from one, handled in its turn by :func:`_settled`."""
    if isinstance(cleaned, Exception):
        return cleaned
    try:
        return start_commit(entry, *cleaned)
    except Exception as e:
        return e.with_traceback(None)


def _prepared(commit: Commit | Exception) -> Commit | Exception:
    """The commit with its probe made (:meth:`Commit.prepare`), or what kept it from one."""
    if isinstance(commit, Commit):
        try:
            commit.prepare()
        except Exception as e:
            return e.with_traceback(None)
    return commit


def _settled(entry: FeedEntry, commit: Commit | Exception) -> dict[str, str]:
    """The entry's result in a batch: its commit's, or the job it was handed to."""
    try:
        if isinstance(commit, Exception):
            raise commit
        result = reported(entry, commit.result())
    except redis.RedisError:
        raise  # Redis is gone: RQ retries the batch, whose stored entries are skipped
    except Exception as e:  # counted as a failure by its own job, if it fails there
        runtime = current()
        queue = ingest_queue(runtime.settings, runtime.store.redis)
        job = enqueue_one(queue, entry, runtime.settings) or ""
        log.warning("article %s: %s; handed to a job of its own (%s)",
                    entry.canonical_url, e, job or "already queued")
        result = {"result": "requeued", "job": job, "error": str(e)}
    return {"url": entry.canonical_url, **result}


def _cleaned(
    entry: FeedEntry, fetched: FetchedResponse | FetchError
) -> tuple[CleanedArticle | None, str, str] | Exception:
    """:func:`clean_fetched` for a batch: what it raises is returned, to be handled
    with the entry's commit."""
    try:
        return clean_fetched(entry, fetched, retry_later=True)
    except Exception as e:
        # Kept until the entry's turn, without the traceback whose frames hold the page.
        return e.with_traceback(None)


def store_entry(
    entry: FeedEntry, fetched: FetchedResponse | FetchError, *, retry_later: bool
) -> dict[str, str]:
    """Clean the fetched page (or fall back to the feed's content), commit the article."""
    return store_cleaned(entry, *clean_fetched(entry, fetched, retry_later=retry_later))


def store_cleaned(
    entry: FeedEntry, cleaned: CleanedArticle | None, fetched_url: str, fetch_error: str
) -> dict[str, str]:
    """Commit the cleaned page (or, without one, the feed's content)."""
    return reported(entry, start_commit(entry, cleaned, fetched_url, fetch_error).result())


def start_commit(
    entry: FeedEntry, cleaned: CleanedArticle | None, fetched_url: str, fetch_error: str
) -> Commit:
    """The commit of the cleaned page (or, without one, the feed's content), its record
    made, not yet sent (its probe is made at :meth:`Commit.prepare`, or when first
    needed)."""
    runtime = current()
    if cleaned is None:
        cleaned = clean_feed_entry(entry)
        if cleaned is None:
            raise ExtractError(
                f"nothing to store for {entry.link}: {fetch_error}, "
                "and the feed entry has no content or summary"
            )
        log.info("article %s: using the feed's content (%s)", entry.canonical_url, fetch_error)
    article, now = cleaned, datetime.now(UTC)

    def made() -> ArticleRecord:
        # The site's learned boilerplate as this worker last saw it: the commit script
        # checks it and has the record made again when it has changed.
        learned, blocks, taken = runtime.store.without_learned(article, remembered=True)
        return build_record(
            entry, learned, now=now, fetched_url=fetched_url, fetch_error=fetch_error,
            blocks=blocks, learned_blocks=taken,
            learned_removed=len(article.paragraphs) - len(learned.paragraphs),
        )

    return runtime.store.start_commit(made(), now, rebuild=made)


def reported(entry: FeedEntry, result: CommitResult) -> dict[str, str]:
    """A commit's result, counted and logged, as the job returns it."""
    metrics.ARTICLES.labels(result.type).inc()
    log.info(
        "article %s: %s%s (%s)", result.id, result.type,
        f" of {result.duplicate_of} by {result.method}" if result.duplicate_of else "",
        entry.canonical_url,
    )
    return {"result": result.type, "id": result.id, "story": result.story,
            "duplicate_of": result.duplicate_of, "method": result.method,
            "similarity": result.similarity, "stream_id": result.stream_id}
