"""Two real worker processes storing two shapes of one article at the same moment.

The loopback site holds both page responses until both workers have asked (a barrier), so
the two jobs clean, look up and commit side by side; whatever the interleaving, the story
is announced once and the second article is linked to the first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import redis

from newswire.model import FeedEntry
from newswire.settings import Settings
from newswire.store import decode_hash
from newswire.urls import canonicalize
from scheduler.service import Scheduler

from .conftest import Request, Response, Runner, Site

pytestmark = pytest.mark.slow

PAGES = {  # the AFP original (shape 1) and TheJournal's edited version of it (shape 5)
    "/mt/news/2025/02/20/leaders-agree-new-talks-a1001": "pages/mt-leaders-agree.html",
    "/tj/leaders-agree-talks-6612345-Feb2025/": "pages/tj-leaders-agree.html",
}


@pytest.fixture
def sched(settings: Settings, client: redis.Redis) -> Iterator[Scheduler]:
    # One job per entry, so that each of the two workers takes one of the copies.
    s = Scheduler(settings.with_(job_batch=1), client)
    yield s
    s.close()


def entry(site: Site, path: str) -> FeedEntry:
    link = site.url(path)
    return FeedEntry(feed="test", link=link, canonical_url=canonicalize(link), guid=link,
                     title="Leaders agree", published="2025-02-20T11:05:00Z")


def test_two_worker_processes_announce_one_story_once(
    site: Site, run: Runner, client: redis.Redis, sched: Scheduler
) -> None:
    both_asked = threading.Barrier(2)
    raced: list[bool] = []

    def held(name: str) -> object:
        body = site.fixture(name)

        def route(_request: Request) -> Response:
            try:
                both_asked.wait(timeout=20)
                raced.append(True)
            except threading.BrokenBarrierError:
                raced.append(False)
            return Response(200, {"Content-Type": "text/html; charset=utf-8"}, body)

        return route

    for path, name in PAGES.items():
        site.routes[path] = held(name)  # type: ignore[assignment]
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("news:new")
    pubsub.get_message(timeout=1)
    assert sched.enqueue(tuple(entry(site, path) for path in PAGES)) == 2

    workers = [subprocess.Popen([sys.executable, "-m", "worker", "--burst"], env=run.env,
                                cwd=run.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL) for _ in range(2)]
    for worker in workers:
        _out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()

    # Each worker held one page at the same moment (the first blocks in its fetch, so
    # the second takes the other job).
    assert raced == [True, True]
    articles = [decode_hash(client.hgetall(key)) for key in client.scan_iter("news:article:*")]
    assert len(articles) == 2
    (first,) = [a for a in articles if not a["duplicate_of"]]
    (second,) = [a for a in articles if a["duplicate_of"]]
    assert second["duplicate_of"] == first["id"] and second["story"] == first["id"]
    assert second["method"] == "minhash" and float(second["similarity"]) >= 0.5
    types = sorted(f[b"type"] for _, f in client.xrange("news:stream"))
    assert types == [b"duplicate", b"new"]
    heard = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        heard.append(json.loads(message["data"])["id"])
    assert heard == [first["id"]]
    pubsub.close()
