"""The worker's job, run in-process by a real RQ ``SimpleWorker`` in burst mode.

Entries are enqueued through the scheduler's own ``Scheduler.enqueue`` (job id from the
canonical URL, ``unique=True``, ``Retry``); the worker fetches their pages from the
loopback site and commits to the test Redis. Nothing is mocked: each test looks at what
a reader of Redis would see (``news:article:*``, ``news:stream``, ``news:new``), at what
RQ recorded (job status, results, the failed registry) and at the requests the site got.

Retries: ``RETRY_INTERVALS`` is read when a job is enqueued. Set to ``[0, 0, 0]``, a
failed job is put straight back on the queue (``Job.retry`` calls ``_enqueue_job`` when
the interval is 0 instead of scheduling it), so the same burst run picks it up again.
"""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer

import newswire.queueing
import newswire.store
import worker.jobs
from newswire.errors import FetchError
from newswire.fingerprint import fingerprint
from newswire.model import ArticleRecord, CleanedArticle, FeedEntry, FetchedResponse, iso
from newswire.queueing import INGEST_BATCH_JOB, INGEST_JOB, ingest_queue
from newswire.schema import article_id, job_id
from newswire.settings import Settings
from newswire.status import failed_jobs
from newswire.store import decode_hash
from newswire.urls import canonicalize
from scheduler.service import Scheduler
from worker.__main__ import Worker
from worker.jobs import ROUND_BYTES, SLOW_FETCH, ingest, page_canonical, rounds
from worker.runtime import Runtime, install

from .conftest import Request, Response, Site

HTML = "text/html; charset=utf-8"
NOW = datetime(2025, 2, 20, 12, 0, tzinfo=UTC)


# -- set-up --------------------------------------------------------------------------


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """The worker process's state, installed as ``python -m worker`` does."""
    rt = Runtime.create(settings)
    install(rt)
    yield rt
    install(None)
    rt.fetcher.close()
    rt.store.redis.close()


@pytest.fixture
def sched(settings: Settings, client: redis.Redis) -> Iterator[Scheduler]:
    s = Scheduler(settings, client)
    yield s
    s.close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries requeued at once instead of after 10 s, 1 min and 5 min."""
    monkeypatch.setattr(newswire.queueing, "RETRY_INTERVALS", [0, 0, 0])


def work(sched: Scheduler, client: redis.Redis) -> None:
    """Run every queued job (and every immediate retry) in this process, then return."""
    # The worker installs its own SIGINT/SIGTERM handlers: give pytest its own back.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        SimpleWorker([sched.queue], connection=client, serializer=JSONSerializer).work(burst=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def make_entry(site: Site, path: str, *, summary: str = "", content: str = "",
               title: str = "A story") -> FeedEntry:
    link = site.url(path)
    return FeedEntry(
        feed="test", link=link, canonical_url=canonicalize(link), guid=link, title=title,
        published="2025-02-20T11:05:00Z", summary=summary, content=content,
    )


def job_of(client: redis.Redis, entry: FeedEntry) -> Job:
    return Job.fetch(job_id(entry.canonical_url), connection=client, serializer=JSONSerializer)


def stored(client: redis.Redis, entry: FeedEntry) -> dict[str, str]:
    return decode_hash(client.hgetall(f"news:article:{article_id(entry.canonical_url)}"))


def stream(client: redis.Redis) -> list[dict[str, str]]:
    return [decode_hash(fields) for _id, fields in client.xrange("news:stream")]


def article_page(topic: str, *, canonical: str = "") -> bytes:
    """A plain news page with six long paragraphs about ``topic`` (enough for trafilatura)."""
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    paragraphs = "".join(
        f"<p>Paragraph {n} about {topic}: officials from the regional council said on "
        f"Thursday that the plan for {topic} would be reviewed again in the spring, after "
        f"residents raised concerns about its cost and about the timetable. Point {n} of "
        "the report, published after months of consultation, sets out the next steps.</p>"
        for n in range(1, 7)
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{link}'
        f"<title>News about {topic}</title></head><body><header><nav>Home | World</nav>"
        f"</header><main><article><h1>News about {topic}</h1>{paragraphs}</article></main>"
        "<footer>Copyright The Test Gazette</footer></body></html>"
    ).encode()


def html(body: bytes, status: int = 200) -> Response:
    return Response(status, {"Content-Type": HTML}, body)


def answers(*responses: Response) -> Any:
    """A route answering with ``responses`` in turn, then repeating the last one."""
    queue = list(responses)

    def route(_request: Request) -> Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return route


# -- transient failures and fallbacks ---------------------------------------------------


@pytest.mark.usefixtures("runtime", "fast_retries")
def test_a_page_failing_twice_with_500_is_retried_and_stored_from_the_page(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    site.routes["/flaky"] = answers(
        html(b"oops", 500), html(b"oops", 500), html(article_page("the bridge"))
    )
    entry = make_entry(site, "/flaky", summary="The feed's summary.")
    assert sched.enqueue((entry,)) == 1

    work(sched, client)

    assert len(site.hits("/flaky")) == 3
    article = stored(client, entry)
    assert article["source"] == "page"
    assert article["fetch_error"] == ""
    assert "Paragraph 6 about the bridge" in article["text"]
    job = job_of(client, entry)
    assert job.get_status() == JobStatus.FINISHED
    result = job.latest_result()
    assert result is not None and result.type == Result.Type.SUCCESSFUL
    assert result.return_value["result"] == "new"
    assert sched.queue.failed_job_registry.get_job_ids() == []


@pytest.mark.usefixtures("runtime", "fast_retries")
def test_a_page_always_503_falls_back_to_the_feed_content_after_the_last_retry(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    site.routes["/down"] = html(b"unavailable", 503)
    entry = make_entry(
        site, "/down", summary="A short summary.",
        content="<p>The first paragraph of the feed.</p><p>The second paragraph.</p>",
    )
    sched.enqueue((entry,))

    work(sched, client)

    # The first try and one per retry; the last one stores what the feed carried.
    assert len(site.hits("/down")) == 1 + len(newswire.queueing.RETRY_INTERVALS)
    article = stored(client, entry)
    assert article["source"] == "feed"
    assert article["text"] == "The first paragraph of the feed.\nThe second paragraph."
    assert "503" in article["fetch_error"]
    job = job_of(client, entry)
    assert job.get_status() == JobStatus.FINISHED
    assert job.retries_left == 0
    assert sched.queue.failed_job_registry.get_job_ids() == []
    assert [e["type"] for e in stream(client)] == ["new"]


@pytest.mark.usefixtures("runtime", "fast_retries")
def test_a_404_page_uses_the_feed_summary_at_once(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    entry = make_entry(site, "/gone", summary="<p>What the feed said about it.</p>")
    sched.enqueue((entry,))

    work(sched, client)

    assert len(site.hits("/gone")) == 1
    article = stored(client, entry)
    assert article["source"] == "feed"
    assert article["text"] == "What the feed said about it."
    assert "404" in article["fetch_error"]
    assert job_of(client, entry).get_status() == JobStatus.FINISHED


@pytest.mark.usefixtures("runtime", "fast_retries")
def test_a_404_page_and_an_empty_entry_fail_the_job_without_retries(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    entry = make_entry(site, "/gone")
    sched.enqueue((entry,))

    work(sched, client)

    assert len(site.hits("/gone")) == 1
    assert stored(client, entry) == {}
    assert client.xlen("news:stream") == 0
    job = job_of(client, entry)
    assert job.get_status() == JobStatus.FAILED
    assert sched.queue.failed_job_registry.get_job_ids() == [job.id]
    result = job.latest_result()
    assert result is not None and result.type == Result.Type.FAILED
    reason = result.exc_string.strip().splitlines()[-1]
    assert reason.startswith("newswire.errors.ExtractError: nothing to store for ")
    assert entry.link in reason and f"{entry.canonical_url} answered 404" in reason


@pytest.mark.usefixtures("runtime", "fast_retries")
def test_a_pdf_falls_back_to_the_feed_content(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    site.routes["/report.pdf"] = Response(200, {"Content-Type": "application/pdf"},
                                          b"%PDF-1.7 not a page")
    entry = make_entry(site, "/report.pdf", summary="<p>The report in one line.</p>")
    sched.enqueue((entry,))

    work(sched, client)

    assert len(site.hits("/report.pdf")) == 1
    article = stored(client, entry)
    assert article["source"] == "feed"
    assert article["text"] == "The report in one line."
    assert "is not an HTML page (application/pdf)" in article["fetch_error"]


# -- idempotence -----------------------------------------------------------------------


@pytest.mark.usefixtures("runtime")
def test_a_job_run_again_after_its_commit_changes_nothing_and_fetches_nothing(
    site: Site, client: redis.Redis
) -> None:
    site.serve("/mt/ruble", "pages/mt-ruble-steadies.html", HTML)
    payload = make_entry(site, "/mt/ruble").to_payload()

    first = ingest(payload)
    again = ingest(payload)  # as a retry after a crash right after the commit would

    assert first["result"] == "new"
    assert again == {"result": "exists", "id": first["id"]}
    assert len(site.hits("/mt/ruble")) == 1
    assert client.xlen("news:stream") == 1


@pytest.mark.usefixtures("runtime")
def test_an_entry_already_stored_is_not_fetched_again_by_a_new_job(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    site.serve("/mt/ruble", "pages/mt-ruble-steadies.html", HTML)
    entry = make_entry(site, "/mt/ruble")
    sched.enqueue((entry,))
    work(sched, client)
    assert len(site.hits("/mt/ruble")) == 1

    # The scheduler itself never enqueues it again (seen, and stored) ...
    assert sched.enqueue((entry,)) == 0
    # ... but a job may still come (the job hash expired, another enqueuer): let RQ's
    # `unique` check pass and enqueue it again under the same id.
    jid = job_id(entry.canonical_url)
    client.delete(f"rq:job:{jid}")
    sched.queue.enqueue_call(INGEST_JOB, args=[entry.to_payload()], job_id=jid, unique=True)
    work(sched, client)

    assert len(site.hits("/mt/ruble")) == 1
    assert client.zcard("news:recent") == 1
    assert client.xlen("news:stream") == 1
    result = job_of(client, entry).latest_result()
    assert result is not None and result.return_value == {
        "result": "exists", "id": article_id(entry.canonical_url)}


# -- deduplication ---------------------------------------------------------------------


def test_a_canonical_link_is_trusted_only_on_the_host_that_served_the_page() -> None:
    served = "http://127.0.0.1:8080/copy"

    def claim(url: str) -> str:
        cleaned = CleanedArticle(title="T", paragraphs=("text",), canonical_url=url)
        return page_canonical(cleaned, served)

    assert claim("http://localhost:8080/original") == ""
    assert claim("https://other.example/original") == ""
    assert claim("http://127.0.0.1:8080/original?utm_source=x#top") == (
        "http://127.0.0.1:8080/original")
    assert claim("") == ""
    assert claim("not a url") == ""


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", "duplicate"),  # the page's own host: its canonical link counts
    ("localhost", "new"),  # another host: the page may not claim its article
])
def test_a_page_canonical_link_on_another_host_does_not_make_a_duplicate(
    host: str, expected: str, site: Site, sched: Scheduler, client: redis.Redis,
    runtime: Runtime,
) -> None:
    original_url = site.url("/original").replace("127.0.0.1", host)
    text = "An unrelated text that shares nothing with the page."
    runtime.store.commit(ArticleRecord(
        id=article_id(original_url), url=original_url, canonical_url=original_url,
        feed="other", title="Original", text=text, published=iso(NOW), fetched=iso(NOW),
        fingerprint=fingerprint(text),
    ), NOW)
    site.routes["/copy"] = html(article_page("the harbour", canonical=original_url))
    entry = make_entry(site, "/copy")
    sched.enqueue((entry,))

    work(sched, client)

    article = stored(client, entry)
    assert article["source"] == "page"
    assert [e["type"] for e in stream(client)] == ["new", expected]
    if expected == "duplicate":
        assert (article["duplicate_of"], article["method"]) == (
            article_id(original_url), "canonical_url")
    else:
        assert article["duplicate_of"] == ""
        assert article["story"] == article["id"]


@pytest.mark.usefixtures("runtime")
def test_the_same_text_at_another_url_is_stored_as_a_duplicate_and_announced_once(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    page = article_page("the new library")
    site.routes["/first"] = html(page)
    site.routes["/second"] = html(page)
    first, second = make_entry(site, "/first"), make_entry(site, "/second")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("news:new")
    pubsub.get_message(timeout=5)  # the subscribe confirmation
    assert sched.enqueue((first, second)) == 2

    work(sched, client)
    # Redis delivers messages of one channel in order: once this marker arrives,
    # everything the jobs published has arrived before it.
    client.publish("news:new", "end")
    messages = []
    while (message := pubsub.get_message(timeout=5)) and message["data"] != b"end":
        messages.append(json.loads(message["data"]))
    pubsub.close()

    first_id, second_id = article_id(first.canonical_url), article_id(second.canonical_url)
    assert [m["id"] for m in messages] == [first_id]
    duplicate = stored(client, second)
    assert duplicate["duplicate_of"] == first_id
    assert duplicate["method"] == "fingerprint"
    assert duplicate["story"] == first_id
    assert [(e["type"], e["id"]) for e in stream(client)] == [
        ("new", first_id), ("duplicate", second_id)]
    assert len(site.hits("/first")) == len(site.hits("/second")) == 1


def run_jobs(settings: Settings, client: redis.Redis, entries: tuple[FeedEntry, ...]) -> None:
    """Enqueue ``entries`` as the scheduler does and run them in this process, with a
    worker runtime made from ``settings`` (for tests that need settings of their own)."""
    rt = Runtime.create(settings)
    install(rt)
    sched = Scheduler(settings, client)
    try:
        assert sched.enqueue(entries) == len(entries)
        work(sched, client)
    finally:
        sched.close()
        install(None)
        rt.fetcher.close()
        rt.store.redis.close()


# -- batches -----------------------------------------------------------------------------


def batch_jobs(client: redis.Redis) -> list[Job]:
    return [Job.fetch(k.decode().removeprefix("rq:job:"), connection=client,
                      serializer=JSONSerializer)
            for k in client.scan_iter("rq:job:batch-*")]


def distinct_page(seed: int) -> bytes:
    """A page whose text shares little with any other seed's (no near-duplicates)."""
    rng = random.Random(seed)
    words = ("harbour council ferry bridge river winter market school hospital station "
             "mayor budget road storm village farmer teacher court police museum library "
             "factory airport train island forest mountain election minister energy").split()
    paragraphs = "".join(f"<p>{' '.join(rng.choice(words) for _ in range(60))}.</p>"
                         for _ in range(5))
    return (f"<html><head><title>Story {seed}</title></head><body><article><h1>Story "
            f"{seed}</h1>{paragraphs}</article></body></html>").encode()


def batch_results(client: redis.Redis) -> list[dict[str, str]]:
    results = [job.latest_result() for job in batch_jobs(client)]
    assert all(r is not None and r.type == Result.Type.SUCCESSFUL for r in results)
    return [item for r in results if r is not None for item in r.return_value["results"]]


def test_entries_are_spread_over_the_live_workers_in_batches_of_at_most_job_batch(
    settings: Settings,
) -> None:
    sizes = newswire.queueing.batch_sizes
    batch = settings.with_(job_batch=16)
    assert sizes(batch, 300, 0) == [16] * 15 + [15] * 4
    assert sizes(batch, 300, 2) == [15] * 20  # ten jobs for each of the two
    assert sizes(batch, 33, 2) == [9, 8, 8, 8]
    assert sizes(batch, 10, 5) == [2] * 5
    assert sizes(batch, 3, 8) == [1] * 3
    assert sizes(batch, 0, 2) == []
    assert sizes(settings.with_(job_batch=1), 300, 1) == [1] * 300


@given(st.integers(1, 5000), st.integers(1, 64), st.integers(0, 16))
def test_batches_hold_every_entry_once_evenly_in_a_multiple_of_the_workers(
    entries: int, job_batch: int, workers: int,
) -> None:
    sizes = newswire.queueing.batch_sizes(Settings(job_batch=job_batch), entries, workers)
    assert sum(sizes) == entries
    assert min(sizes) >= 1 and max(sizes) <= job_batch and max(sizes) - min(sizes) <= 1
    assert len(sizes) % max(1, workers) == 0 or len(sizes) == entries
    # No more jobs than the batch bound and the workers call for.
    assert len(sizes) < math.ceil(entries / job_batch) + max(1, workers)


def test_entries_whose_job_exists_already_are_marked_seen_but_not_counted(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    # A crash between enqueueing and marking seen: the jobs exist, the marks don't.
    single = make_entry(site, "/s")
    pair = (make_entry(site, "/p0"), make_entry(site, "/p1"))
    newswire.queueing.enqueue_entries(sched.queue, (single,), sched.settings)
    newswire.queueing.enqueue_entries(sched.queue, pair, sched.settings)
    jobs = len(sched.queue.job_ids)

    assert sched.enqueue((single,)) == 0
    assert sched.enqueue(pair) == 0
    assert len(sched.queue.job_ids) == jobs  # nothing enqueued twice
    assert sched.store.unseen((single, *pair)) == []  # and not tried again


@pytest.mark.usefixtures("runtime")
def test_one_batch_job_stores_every_entry_once_and_reports_each(
    site: Site, settings: Settings, client: redis.Redis
) -> None:
    for n in range(5):
        site.routes[f"/b{n}"] = html(distinct_page(n))
    entries = tuple(make_entry(site, f"/b{n}") for n in range(5))
    sched = Scheduler(settings.with_(job_batch=3), client)
    try:
        assert sched.enqueue(entries) == len(entries)
        # Five entries, batches of at most three: one batch of three and one of two.
        assert sorted(len(job.args[0]) for job in batch_jobs(client)) == [2, 3]
        work(sched, client)
    finally:
        sched.close()

    for n, entry in enumerate(entries):
        assert stored(client, entry)["source"] == "page"
        assert len(site.hits(f"/b{n}")) == 1
    reported = batch_results(client)
    assert sorted(r["url"] for r in reported) == sorted(e.canonical_url for e in entries)
    assert {r["result"] for r in reported} == {"new"}
    assert [e["type"] for e in stream(client)] == ["new"] * len(entries)


@pytest.mark.usefixtures("runtime")
def test_a_batch_decides_its_copies_in_order_while_their_calls_overlap(
    site: Site, settings: Settings, client: redis.Redis
) -> None:
    # The copy has a candidate (the original, stored just before it): its second call goes
    # out while the next page's probe is made, and each commit still sees the ones before.
    original = distinct_page(1)
    site.routes["/original"] = html(original)
    site.routes["/copy"] = html(original.replace(b"<p>", b"<p>Updated. ", 1))
    site.routes["/other"] = html(distinct_page(2))
    entries = tuple(make_entry(site, path) for path in ("/original", "/copy", "/other"))
    sched = Scheduler(settings.with_(job_batch=3), client)
    try:
        assert sched.enqueue(entries) == 3
        work(sched, client)
    finally:
        sched.close()
    assert [(e["type"], e["method"]) for e in stream(client)] == [
        ("new", ""), ("duplicate", "minhash"), ("new", "")]
    assert stored(client, entries[1])["duplicate_of"] == stored(client, entries[0])["id"]


def test_a_batch_takes_its_pages_in_rounds_that_end_at_round_bytes() -> None:
    def page(n: int, size: int) -> tuple[FeedEntry, FetchedResponse]:
        entry = FeedEntry(feed="t", link=f"http://a.example/{n}",
                          canonical_url=f"http://a.example/{n}", guid=str(n))
        return entry, FetchedResponse(url=entry.link, status=200, headers={}, body=b"x" * size)

    pages = [page(0, 3), page(1, 2), page(2, 3), page(3, 10), page(4, 1)]
    failed = (pages[0][0], FetchError("unreachable"))  # no body: counts nothing
    sizes = [[len(f.body) if isinstance(f, FetchedResponse) else None for _, f in r]
             for r in rounds([*pages[:2], failed, *pages[2:]], 6)]
    # In order; a round ends with the page that reaches the bound, a big page alone.
    assert sizes == [[3, 2, None, 3], [10], [1]]
    assert [[e.guid for e, _ in r] for r in rounds(pages, 100)] == [["0", "1", "2", "3", "4"]]
    assert list(rounds([], 6)) == []
    # A page still on its way (None) ends the round before it; nothing held, no round.
    waits = [None, pages[0], pages[1], None, None, pages[2], pages[3], None]
    assert [[e.guid for e, _ in r] for r in rounds(waits, 100)] == [["0", "1"], ["2", "3"]]


@pytest.mark.usefixtures("runtime")
def test_a_round_commits_in_entry_order_and_each_commit_sees_the_ones_before(
    site: Site, settings: Settings, client: redis.Redis
) -> None:
    # Two URLs with the same article, cleaned in one round before either is committed.
    for path in ("/first", "/copy"):
        site.routes[path] = html(article_page("the harbour"))
    site.routes["/other"] = html(distinct_page(7))
    entries = tuple(make_entry(site, p) for p in ("/first", "/other", "/copy"))
    sched = Scheduler(settings.with_(job_batch=3), client)
    try:
        assert sched.enqueue(entries) == 3
        assert len(batch_jobs(client)) == 1
        work(sched, client)
    finally:
        sched.close()

    reported = batch_results(client)
    assert [r["url"] for r in reported] == [e.canonical_url for e in entries]
    assert [r["result"] for r in reported] == ["new", "new", "duplicate"]
    assert reported[2]["duplicate_of"] == article_id(entries[0].canonical_url)


@pytest.mark.usefixtures("runtime")
def test_redis_failing_mid_batch_fails_the_batch_and_hands_nothing_on(
    site: Site, sched: Scheduler, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        site.routes[f"/r{n}"] = html(distinct_page(20 + n))
    entries = tuple(make_entry(site, f"/r{n}") for n in range(3))
    send = newswire.store.Commit.send
    calls = 0

    def send_then_fail(commit: newswire.store.Commit) -> None:
        # Redis goes away at the second commit: its call never reaches it, and the
        # client's own tries fail too.
        nonlocal calls
        calls += 1
        if calls == 1:
            send(commit)
            return
        monkeypatch.setattr(newswire.store.Store, "_run_commit", went_away)

    def went_away(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(newswire.store.Commit, "send", send_then_fail)
    assert sched.enqueue(entries) == 3
    [batch] = batch_jobs(client)

    work(sched, client)

    # The first entry was stored; the batch failed as a whole and goes to RQ's retries
    # (whose run skips what is stored), with no entry handed to a job of its own.
    assert stored(client, entries[0])["source"] == "page"
    assert stored(client, entries[1]) == {} and stored(client, entries[2]) == {}
    assert batch.get_status(refresh=True) == JobStatus.SCHEDULED  # RQ's retry, later
    assert sched.queue.scheduled_job_registry.get_job_ids() == [batch.id]
    assert not any(client.exists(f"rq:job:{job_id(e.canonical_url)}") for e in entries)


@pytest.mark.usefixtures("runtime", "fast_retries")
@pytest.mark.parametrize("round_bytes", [1, ROUND_BYTES])
def test_an_entry_a_batch_cannot_store_goes_to_a_job_of_its_own_and_the_rest_are_stored(
    site: Site, sched: Scheduler, client: redis.Redis, round_bytes: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker.jobs, "ROUND_BYTES", round_bytes)  # 1: a round per page
    site.routes["/ok"] = html(distinct_page(1))
    site.routes["/flaky"] = answers(html(b"busy", 503), html(distinct_page(2)))
    site.routes["/also-ok"] = html(distinct_page(3))
    ok, flaky, gone, also_ok = (make_entry(site, p) for p in ("/ok", "/flaky", "/gone",
                                                              "/also-ok"))
    assert sched.enqueue((ok, flaky, gone, also_ok)) == 4
    assert len(batch_jobs(client)) == 1

    work(sched, client)

    # The batch stored what it could and handed the other two on...
    results = {r["url"]: r for r in batch_results(client)}
    assert results[ok.canonical_url]["result"] == results[also_ok.canonical_url]["result"] == "new"
    assert results[flaky.canonical_url]["result"] == "requeued"
    assert "503" in results[flaky.canonical_url]["error"]
    assert results[flaky.canonical_url]["job"] == job_id(flaky.canonical_url)
    assert results[gone.canonical_url]["result"] == "requeued"
    # ...to single jobs: the flaky page was stored from the page on its second try,
    assert stored(client, flaky)["source"] == "page"
    assert len(site.hits("/flaky")) == 2
    assert job_of(client, flaky).get_status() == JobStatus.FINISHED
    # and the page with nothing to store failed with its reason, once, without retries.
    assert stored(client, gone) == {}
    failed = job_of(client, gone)
    assert sched.queue.failed_job_registry.get_job_ids() == [failed.id]
    assert "nothing to store" in failed.latest_result().exc_string
    assert len(site.hits("/gone")) == 2  # the batch's try and the job's one
    assert sorted(e["id"] for e in stream(client)) == sorted(
        article_id(e.canonical_url) for e in (ok, flaky, also_ok))


@pytest.mark.usefixtures("runtime")
def test_a_failed_batch_is_listed_by_its_first_entry_and_how_many_more(
    sched: Scheduler, client: redis.Redis
) -> None:
    # Entries without the fields a FeedEntry needs: the batch fails before any fetch.
    payloads = [{"feed": "test", "link": f"http://news.example/{n}"} for n in range(3)]
    sched.queue.enqueue_call(INGEST_BATCH_JOB, args=[payloads], job_id="batch-broken")

    work(sched, client)

    [failed] = failed_jobs(sched.queue)
    assert failed.id == "batch-broken"
    assert failed.url == "http://news.example/0 and 2 more"
    assert failed.feed == "test"
    assert "TypeError" in failed.reason


def test_the_worker_s_listener_thread_has_ended_when_it_unsubscribes(
    settings: Settings, client: redis.Redis
) -> None:
    worker = Worker([ingest_queue(settings, client)], connection=client,
                    serializer=JSONSerializer)
    worker.subscribe()
    thread, pubsub = worker.pubsub_thread, worker.pubsub
    assert thread is not None and thread.is_alive()
    send_unsubscribe = pubsub.unsubscribe

    def unsubscribe_and_let_the_listener_read_the_reply(*args: Any) -> None:
        # The interleaving that held every exit up: the listener reads the reply before
        # it is told to stop, and then waits 60 s for a subscription (RQ joins it 1 s).
        send_unsubscribe(*args)
        deadline = time.monotonic() + 5
        while pubsub.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)

    pubsub.unsubscribe = unsubscribe_and_let_the_listener_read_the_reply  # type: ignore[method-assign]
    worker.unsubscribe()
    assert not thread.is_alive()


class InFlight:
    """Routes that count how many of their requests are in flight at once."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()

    def route(self, body: bytes, delay: float, at_end: list[int] | None = None) -> Any:
        """A route answering after ``delay``; ``at_end`` gets how many requests (its own
        among them) were in flight as it ended."""
        def handle(_request: Request) -> Response:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(delay)
            with self.lock:
                if at_end is not None:
                    at_end.append(self.now)
                self.now -= 1
            return html(body)

        return handle


@pytest.mark.usefixtures("runtime")
@pytest.mark.parametrize(("delay", "most"), [(0.0, 1), (2 * SLOW_FETCH, 4)])
def test_a_batch_fetches_ahead_only_once_pages_come_slowly(
    site: Site, sched: Scheduler, client: redis.Redis, delay: float, most: int
) -> None:
    pages = InFlight()
    for n in range(8):
        site.routes[f"/p{n}"] = pages.route(distinct_page(n), delay)
    entries = tuple(make_entry(site, f"/p{n}") for n in range(8))
    assert sched.enqueue(entries) == 8
    assert len(batch_jobs(client)) == 1

    work(sched, client)

    # Fast pages one at a time (threads would cost more than they hide); after a
    # slow one, NEWSWIRE_FETCH_AHEAD (4) of them at once.
    assert pages.most == most
    assert all(stored(client, entry)["source"] == "page" for entry in entries)


@pytest.mark.usefixtures("runtime")
def test_a_batch_fetches_ahead_from_its_first_page_when_the_host_was_slow_before(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    pages = InFlight()
    alongside: list[int] = []  # requests in flight as each batch's first page ends
    for batch in range(2):
        site.routes[f"/b{batch}p0"] = pages.route(distinct_page(10 * batch), 2 * SLOW_FETCH,
                                                  alongside)
        for n in range(1, 4):
            site.routes[f"/b{batch}p{n}"] = pages.route(distinct_page(10 * batch + n),
                                                        2 * SLOW_FETCH)
        entries = tuple(make_entry(site, f"/b{batch}p{n}") for n in range(4))
        assert sched.enqueue(entries) == 4
        work(sched, client)
        assert all(stored(client, entry)["source"] == "page" for entry in entries)

    # The first batch learns that the host is slow from its first page, fetched
    # alone; the second fetches its first page with the others.
    assert alongside[0] == 1
    assert alongside[1] > 1


def test_a_worker_remembers_the_pace_of_its_latest_hosts_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker.jobs, "HOSTS_KEPT", 2)
    monkeypatch.setattr(worker.jobs, "fetch", lambda entry: FetchError("unreachable"))
    entries = [FeedEntry(feed="t", link=f"http://{h}.example/", guid=h,
                         canonical_url=f"http://{h}.example/") for h in "abca"]
    slow_hosts = {"c.example": True}  # known slow, then found fast: its last pace counts
    fetched = [page for page in worker.jobs.prefetched(entries, 0, slow_hosts) if page]
    assert [entry for entry, _ in fetched] == entries
    assert list(slow_hosts.items()) == [("c.example", False), ("a.example", False)]


@pytest.mark.usefixtures("runtime")
def test_a_batch_works_on_the_pages_it_has_while_the_next_is_on_its_way(
    site: Site, sched: Scheduler, client: redis.Redis
) -> None:
    # The first page is slow (so the rest are fetched ahead), the next four come at
    # once, and the last answers once those five are stored, or after 2 s (well within
    # the request timeout).
    pages = InFlight()
    site.routes["/p0"] = pages.route(distinct_page(0), 2 * SLOW_FETCH)
    for n in range(1, 5):
        site.routes[f"/p{n}"] = pages.route(distinct_page(n), 0.0)
    stored_before: list[int] = []

    def last(_request: Request) -> Response:
        deadline = time.monotonic() + 2
        while client.zcard("news:recent") < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        stored_before.append(int(client.zcard("news:recent")))
        return html(distinct_page(5))

    site.routes["/p5"] = last
    entries = tuple(make_entry(site, f"/p{n}") for n in range(6))
    assert sched.enqueue(entries) == 6
    assert len(batch_jobs(client)) == 1

    work(sched, client)

    # Stored while the last was on its way: a batch that fetched every page before
    # cleaning any would have stored none of them by then.
    assert stored_before == [5]
    assert [e["url"] for e in stream(client)] == [e.link for e in entries]
