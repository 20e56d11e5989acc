"""The RQ job: one feed entry in, one stored article out.

fetch the page → clean it → drop the site's learned boilerplate → fingerprint →
commit (one Lua script, which also counts the page's paragraphs for its site). A page that
can't be fetched or gives no text is replaced by the feed's own content, and the
article says so (``source=feed``, ``fetch_error``). Transient failures raise
while RQ has retries left (``Retry`` with backoff, set by the scheduler); a job
with nothing to store fails with its reason in RQ's failed registry.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from rq import get_current_job

from newswire import metrics
from newswire.clean import clean_feed_entry, clean_response
from newswire.errors import ExtractError, FetchError, TransientFetchError
from newswire.fingerprint import fingerprint
from newswire.http import PAGE_ACCEPT
from newswire.model import ArticleRecord, CleanedArticle, FeedEntry, iso
from newswire.profiles import profiles_for
from newswire.schema import article_id
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
        learned_removed=learned_removed,
    )


def fetch_and_clean(entry: FeedEntry) -> tuple[CleanedArticle | None, str, str]:
    """Fetch the entry's page and clean it: (article or None, final URL, why not)."""
    runtime = current()
    try:
        with metrics.FETCH_SECONDS.labels("page").time():
            response = runtime.fetcher.get(
                entry.canonical_url, max_bytes=runtime.settings.page_max_bytes,
                accept=PAGE_ACCEPT,
            )
    except TransientFetchError as e:
        if _retries_left():
            raise
        return None, entry.canonical_url, str(e)
    except FetchError as e:
        return None, entry.canonical_url, str(e)
    try:
        with metrics.EXTRACT_SECONDS.time():
            cleaned = clean_response(
                response, entry=entry, profiles=profiles_for(runtime.settings.profiles_dir)
            )
    except ExtractError as e:
        return None, response.url, str(e)
    return cleaned, response.url, ""


def ingest(payload: dict[str, Any]) -> dict[str, str]:
    """RQ job: store the article behind one feed entry (idempotent)."""
    try:
        return _ingest(payload)
    except Exception as e:
        metrics.JOB_FAILURES.labels(type(e).__name__).inc()
        raise


def _ingest(payload: dict[str, Any]) -> dict[str, str]:
    runtime = current()
    entry = FeedEntry.from_payload(payload)
    stored = runtime.store.stored_id(entry.canonical_url)
    if stored:
        return {"result": "exists", "id": stored}
    cleaned, fetched_url, fetch_error = fetch_and_clean(entry)
    if cleaned is None:
        cleaned = clean_feed_entry(entry)
        if cleaned is None:
            _no_retry()
            raise ExtractError(
                f"nothing to store for {entry.link}: {fetch_error}, "
                "and the feed entry has no content or summary"
            )
        log.info("article %s: using the feed's content (%s)", entry.canonical_url, fetch_error)
    learned, blocks = runtime.store.without_learned(
        cleaned, runtime.settings.boilerplate_min_pages
    )
    now = datetime.now(UTC)
    record = build_record(
        entry, learned, now=now, fetched_url=fetched_url, fetch_error=fetch_error,
        blocks=blocks, learned_removed=len(cleaned.paragraphs) - len(learned.paragraphs),
    )
    result = runtime.store.commit(record, now)
    metrics.ARTICLES.labels(result.type).inc()
    log.info(
        "article %s: %s%s (%s)", result.id, result.type,
        f" of {result.duplicate_of} by {result.method}" if result.duplicate_of else "",
        entry.canonical_url,
    )
    return {"result": result.type, "id": result.id, "story": result.story,
            "duplicate_of": result.duplicate_of, "method": result.method,
            "similarity": result.similarity, "stream_id": result.stream_id}
