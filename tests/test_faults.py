"""Faults that really happen: workers killed with SIGKILL mid-burst, Redis restarted
mid-run, hosts that never recover. Real processes, a real Redis, a loopback site; at the
end every article is stored once and announced once.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

import newswire.queueing
from newswire.embedded import RedisServer
from newswire.model import FeedEntry
from newswire.settings import Settings
from newswire.store import Store
from newswire.urls import canonicalize
from scheduler.service import Scheduler

from .conftest import Request, Response, Runner, Site, write_feeds
from .test_store import record
from .test_up import wait_for

pytestmark = pytest.mark.slow

WORDS = (
    "harbour council ferry bridge river winter market school hospital station mayor "
    "budget road storm village farmer teacher court police museum library factory "
    "airport train island forest mountain election minister energy water housing "
    "festival theatre garden bakery clinic tunnel canal lighthouse orchard quarry "
    "vineyard brewery ranger pilot nurse engineer sailor miner weaver baker"
).split()


def story(seed: int) -> list[str]:
    """Five paragraphs of text of its own (random words, seeded): no two pages alike."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(40)).capitalize() + "."
        for _ in range(5)
    ]


def page(seed: int) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in story(seed))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Story {seed}'
            f"</title></head><body><article><h1>Story {seed}</h1>{body}</article></body>"
            "</html>").encode()


def slow(body: bytes, delay: float) -> Callable[[Request], Response]:
    def route(_request: Request) -> Response:
        time.sleep(delay)
        return Response(200, {"Content-Type": "text/html; charset=utf-8"}, body)
    return route


@dataclass
class Listener:
    """Everything published on ``news:new``, heard from a thread."""

    client: redis.Redis
    heard: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe("news:new")
        self._pubsub.get_message(timeout=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._pubsub.get_message(timeout=0.1)
            except redis.ConnectionError:
                time.sleep(0.1)  # Redis restarting: redis-py resubscribes
                continue
            if message and message["data"] != b"end":
                self.heard.append(json.loads(message["data"]))

    def close(self) -> None:
        self.client.publish("news:new", "end")
        time.sleep(0.3)
        self._stop.set()
        self._thread.join()
        self._pubsub.close()


def stored_count(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter("news:article:*", count=1000))


def enqueue_site(site: Site, client: redis.Redis, settings: Settings, count: int,
                 delay: float) -> list[FeedEntry]:
    entries = []
    for n in range(count):
        path = f"/news/{n}"
        site.routes[path] = slow(page(n), delay)
        link = site.url(path)
        entries.append(FeedEntry(feed="test", link=link, canonical_url=canonicalize(link),
                                 guid=link, title=f"Story {n}",
                                 published="2025-02-20T11:05:00Z"))
    sched = Scheduler(settings, client)
    try:
        assert sched.enqueue(tuple(entries)) == count
    finally:
        sched.close()
    return entries


@dataclass
class Process:
    """A command run in the background, its output going to a file (a pipe nobody
    reads would stall it)."""

    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)


def start_worker(run: Runner, *args: str, env: dict[str, str] | None = None) -> Process:
    log = run.cwd / f"worker-{time.monotonic_ns()}.log"
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", "worker", *args], env=env or run.env, cwd=run.cwd,
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
        )
    return Process(popen, log)


def assert_once_each(client: redis.Redis, listener: Listener, count: int, *,
                     pubsub_lost: bool = False) -> None:
    """Every article stored once, one stream entry and one announcement each.

    ``pubsub_lost``: Redis went away, and pub/sub delivers at most once: what was
    published while the listener was reconnecting is gone (the stream keeps it), but
    nothing is announced twice.
    """
    assert stored_count(client) == count
    stream = [{k.decode(): v.decode() for k, v in f.items()}
              for _, f in client.xrange("news:stream")]
    assert len(stream) == count
    assert len({e["id"] for e in stream}) == count
    assert all(e["type"] == "new" for e in stream)
    listener.close()
    announced = [m["id"] for m in listener.heard]
    assert len(set(announced)) == len(announced)
    if pubsub_lost:
        assert set(announced) <= {e["id"] for e in stream}
    else:
        assert sorted(announced) == sorted(e["id"] for e in stream)


@pytest.fixture
def immediate_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries requeued at once (read when a job is enqueued), not 10 s later."""
    monkeypatch.setattr(newswire.queueing, "RETRY_INTERVALS", [0, 0, 0])


@pytest.mark.usefixtures("immediate_retries")
def test_a_worker_killed_mid_burst_loses_nothing_and_repeats_nothing(
    site: Site, run: Runner, client: redis.Redis, settings: Settings
) -> None:
    count = 200
    enqueue_site(site, client, settings, count, delay=0.02)
    listener = Listener(client)
    first = start_worker(run)
    try:
        wait_for(lambda: stored_count(client) >= 40, "the first articles", timeout=120)
        # Kill it while it holds a job: the page requests are slow, so it almost always
        # does; the test stands either way.
        wait_for(lambda: StartedJobRegistry("newswire", connection=client).count > 0,
                 "a job in progress")
        first.popen.send_signal(signal.SIGKILL)
    finally:
        first.wait(timeout=10)
    assert stored_count(client) < count

    # A new worker on the same host hands the dead one's job back to RQ, which
    # retries it; the burst then finishes the queue.
    second = start_worker(run, "--burst")
    assert second.wait(timeout=300) == 0, second.output()
    assert "is gone: 1 started job(s) handed back" in second.output()

    assert_once_each(client, listener, count)
    queue = Queue("newswire", connection=client, serializer=JSONSerializer)
    assert StartedJobRegistry(queue=queue).count == 0
    assert FailedJobRegistry(queue=queue).count == 0
    for n in range(count):
        assert 1 <= len(site.hits(f"/news/{n}")) <= 2


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of its own with AOF on, as in docker-compose.yml, to restart mid-run."""
    server = RedisServer(tmp_path / "aof-redis", persist=True).start()
    yield server
    server.stop()


@pytest.mark.usefixtures("immediate_retries")
def test_redis_restarted_mid_run_the_worker_reconnects_and_finishes(
    site: Site, run: Runner, aof_redis: RedisServer, tmp_path: Path
) -> None:
    url = aof_redis.url
    client = redis.Redis.from_url(url)
    settings = Settings(redis_url=url, allow_private_networks=True,
                        feeds_path=tmp_path / "feeds.toml", request_timeout=5.0)
    count = 120
    enqueue_site(site, client, settings, count, delay=0.03)
    listener = Listener(client)
    worker = start_worker(run, env={**run.env, "REDIS_URL": url})
    try:
        wait_for(lambda: stored_count(client) >= 30, "the first articles")
        aof_redis.stop()  # SHUTDOWN: the AOF is written, the socket goes away
        time.sleep(3)  # longer than the client's own retries
        aof_redis.start()
        wait_for(lambda: stored_count(client) == count, "every article", timeout=180)
        wait_for(lambda: Queue("newswire", connection=client).count == 0, "an empty queue")
    finally:
        worker.popen.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker.output()
    assert_once_each(client, listener, count, pubsub_lost=True)
    client.close()


def test_a_page_that_never_recovers_is_a_failed_job_with_its_reason_and_can_be_retried(
    site: Site, run: Runner, client: redis.Redis, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(newswire.queueing, "RETRY_INTERVALS", [0, 0])
    path = "/news/down"
    answers = {"status": 503}

    def route(_request: Request) -> Response:
        if answers["status"] == 200:
            return Response(200, {"Content-Type": "text/html; charset=utf-8"}, page(7))
        return Response(503, {"Content-Type": "text/plain"}, b"down for maintenance")

    site.routes[path] = route
    write_feeds(run.cwd / "feeds.toml", {"test": site.url("/feed")})
    link = site.url(path)
    entry = FeedEntry(feed="test", link=link, canonical_url=canonicalize(link), guid=link,
                      title="Down", published="2025-02-20T11:05:00Z")
    sched = Scheduler(settings, client)
    try:
        sched.enqueue((entry,))
    finally:
        sched.close()
    done = run("-m", "worker", "--burst")
    assert done.returncode == 0, done.stderr
    assert len(site.hits(path)) == 3  # the first try and two retries
    assert stored_count(client) == 0

    status = run.newswire("status", "--json")
    assert status.returncode == 0, status.stderr
    figures = json.loads(status.stdout)
    assert figures["failed"] == 1
    [failed] = figures["failed_jobs"]
    assert failed["url"] == link
    assert "503" in failed["reason"]
    text = run.newswire("status").stdout
    assert link in text and "503" in text

    answers["status"] = 200
    retried = run.newswire("retry", "--all")
    assert retried.returncode == 0, retried.stderr
    assert "requeued 1 failed job" in retried.stdout
    done = run("-m", "worker", "--burst")
    assert done.returncode == 0, done.stderr
    assert stored_count(client) == 1
    assert json.loads(run.newswire("status", "--json").stdout)["failed"] == 0


def test_retry_names_jobs_it_does_not_know(run: Runner) -> None:
    done = run.newswire("retry", "article-nosuchjob")
    assert done.returncode == 1
    assert done.stderr.strip() == "newswire: error: no failed job article-nosuchjob"
    assert run.newswire("retry").returncode == 2  # neither --all nor a job id


def test_killing_a_worker_process_id_is_seen_only_on_its_own_host(
    client: redis.Redis,
) -> None:
    """The reclaim step trusts a pid only from its own host name."""
    from rq import SimpleWorker

    from worker.recovery import dead_workers

    queue = Queue("newswire", connection=client, serializer=JSONSerializer)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    elsewhere = SimpleWorker([queue], connection=client, name="elsewhere")
    here = SimpleWorker([queue], connection=client, name="here")
    for worker, host in ((elsewhere, "another-host"), (here, None)):
        worker.register_birth()
        if host:
            client.hset(worker.key, "hostname", host)
        client.hset(worker.key, "pid", gone.stdout.strip())
    assert [w.name for w in dead_workers(queue)] == ["here"]
    assert dead_workers(queue, me="here") == []


def test_the_stream_stays_capped_and_a_subscriber_resuming_past_the_cap_is_told(
    client: redis.Redis, redis_url: str, run: Runner
) -> None:
    cap = 100
    store = Store(client, Settings(redis_url=redis_url).with_(stream_maxlen=cap))
    now = datetime(2025, 2, 20, 12, 0, tzinfo=UTC)
    for n in range(600):
        text = "\n".join(story(n))
        store.commit(record(f"https://news.example/{n}", text), now)
    # MAXLEN ~ trims whole macro nodes (100 entries each by default): a little over.
    assert cap <= client.xlen("news:stream") <= cap + 100
    assert stored_count(client) == 600  # the articles themselves stay

    # The default 5 s blocking read: longer than redis-py's default socket timeout.
    done = run.newswire("subscribe", "--from", "1-0", "--json", "--exit-when-idle")
    assert done.returncode == 0, done.stderr
    kept = [entry_id.decode() for entry_id, _ in client.xrange("news:stream")]
    assert done.stderr == (
        "newswire: warning: the stream's cap (NEWSWIRE_STREAM_MAXLEN) removed entries older "
        f"than {kept[0]}; those after 1-0 are missed; going on from {kept[0]}\n")
    shown = [json.loads(line)["stream_id"] for line in done.stdout.splitlines()]
    assert shown == kept

    # Resuming from an entry still kept: no warning, nothing missed.
    done = run.newswire("subscribe", "--from", kept[10], "--json", "--exit-when-idle",
                        "--block-ms", "300")
    assert done.stderr == ""
    assert [json.loads(line)["stream_id"] for line in done.stdout.splitlines()] == kept[11:]


def test_a_scheduler_killed_mid_poll_loses_nothing_and_repeats_nothing(
    site: Site, run: Runner, client: redis.Redis
) -> None:
    feeds, per_feed = ("a", "b", "c"), 5
    hang = threading.Event()

    def feed_route(name: str) -> Callable[[Request], Response]:
        items = "".join(
            f"<item><title>{name} {n}</title><link>{site.url(f'/{name}/{n}')}</link></item>"
            for n in range(per_feed))
        body = f"<rss version='2.0'><channel><title>{name}</title>{items}</channel></rss>"
        calls = []

        def route(_request: Request) -> Response:
            calls.append(1)
            if name == "b" and len(calls) == 1:
                hang.wait(60)  # the first poll of b hangs until the scheduler is killed
            return Response(200, {"Content-Type": "application/rss+xml"}, body.encode())
        return route

    for index, name in enumerate(feeds):
        site.routes[f"/feed/{name}"] = feed_route(name)
        for n in range(per_feed):
            site.routes[f"/{name}/{n}"] = Response(
                200, {"Content-Type": "text/html; charset=utf-8"}, page(100 * index + n))
    write_feeds(run.cwd / "feeds.toml", {n: site.url(f"/feed/{n}") for n in feeds})

    log = run.cwd / "scheduler.log"
    with log.open("wb") as sink:
        first = subprocess.Popen([sys.executable, "-m", "scheduler", "--once"], env=run.env,
                                 cwd=run.cwd, stdin=subprocess.DEVNULL, stdout=sink,
                                 stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(site.hits("/feed/b")) == 1 and len(site.hits("/feed/a")) >= 1,
                 "the scheduler in the middle of its poll")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        hang.set()
        if first.poll() is None:
            first.kill()

    # Its leases lapse (time passes: every feed is due again), another scheduler polls.
    for name in feeds:
        client.zadd("news:feeds:due", {name: 0})
    second = run("-m", "scheduler", "--once")
    assert second.returncode == 0, second.stderr
    worker = run("-m", "worker", "--burst")
    assert worker.returncode == 0, worker.stderr

    urls = {client.hget(k, "canonical_url") for k in client.scan_iter("news:article:*")}
    assert len(urls) == stored_count(client) == len(feeds) * per_feed
    stream = client.xrange("news:stream")
    assert len(stream) == len(feeds) * per_feed
    assert len({f[b"id"] for _, f in stream}) == len(stream)
    for name in feeds:
        for n in range(per_feed):
            assert len(site.hits(f"/{name}/{n}")) == 1  # each page fetched once


def test_a_page_that_resets_then_hangs_then_answers_is_retried_and_stored(
    site: Site, client: redis.Redis, settings: Settings, immediate_retries: None
) -> None:
    from .test_worker import make_entry, run_jobs, stored

    tries: list[str] = []

    def route(_request: Request) -> Response:
        tries.append("try")
        if len(tries) == 1:
            raise ConnectionResetError("the connection is dropped without an answer")
        if len(tries) == 2:
            time.sleep(3)  # longer than the request deadline
        return Response(200, {"Content-Type": "text/html; charset=utf-8"}, page(42))

    site.routes["/flaky"] = route
    entry = make_entry(site, "/flaky")
    run_jobs(settings.with_(request_timeout=1.0), client, (entry,))
    assert len(tries) == 3
    article = stored(client, entry)
    assert article["source"] == "page"
    assert article["text"].split("\n") == story(42)
