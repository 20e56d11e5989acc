"""End to end: the documented commands as real processes, fixture feeds on loopback,
Redis checked against the contract."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from .conftest import DATA, Request, Response, Runner, Site, write_feeds

pytestmark = pytest.mark.slow

RSS = "application/rss+xml"
ARTICLE_FIELDS = ("id", "url", "canonical_url", "feed", "title", "text", "published", "fetched",
                  "fingerprint", "story", "duplicate_of")
EVENT_FIELDS = ("id", "url", "title", "feed", "published", "story")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

PAGES = {
    "/mt/news/2025/02/20/leaders-agree-new-talks-a1001": "pages/mt-leaders-agree.html",
    "/mt/news/2025/02/20/ruble-steadies-a1002": "pages/mt-ruble-steadies.html",
    "/mt/news/2025/12/11/macron-reengagement-a1003": "pages/mt-macron-reengagement.html",
    "/mt/news/2025/02/21/sanctions-review-a1004": "pages/mt-sanctions-review.html",
    "/ru/novosti-a2001": "pages/ru-novosti-1251.html",
    "/tj/leaders-agree-talks-6612345-Feb2025/": "pages/tj-leaders-agree.html",
    "/agg/2025/02/20/leaders-agree-new-talks": "pages/agg-leaders-agree.html",
    "/rw/summit-rewrite": "pages/rw-summit-rewrite.html",
}
FEEDS = {
    "moscowtimes": ("/mt/rss/news", "feeds/moscowtimes.rss", RSS),
    "mt-politics": ("/mt/rss/politics", "feeds/moscowtimes-politics.rss", RSS),
    "legacy": ("/legacy/rss", "feeds/legacy-1251.rss", "text/xml"),
    "thejournal": ("/tj/feed/", "feeds/thejournal.rss", RSS),
    "aggregator": ("/agg/atom", "feeds/aggregator.atom", "application/atom+xml"),
    "broken": ("/broken/rss", "feeds/malformed.xml", RSS),
}


@dataclass
class Feed:
    """A feed route that honours If-None-Match, as real servers do."""

    site: Site
    body: bytes
    content_type: str
    version: int = 1

    @property
    def etag(self) -> str:
        return f'"v{self.version}"'

    def __call__(self, request: Request) -> Response:
        if request.headers.get("if-none-match") == self.etag:
            return Response(304, {"ETag": self.etag})
        return Response(200, {"Content-Type": self.content_type, "ETag": self.etag}, self.body)


@dataclass
class Newsroom:
    site: Site
    run: Runner
    client: redis.Redis
    feeds: dict[str, Feed] = field(default_factory=dict)
    heard: list[dict[str, str]] = field(default_factory=list)

    def ingest(self) -> None:
        scheduler = self.run("-m", "scheduler", "--once")
        assert scheduler.returncode == 0, scheduler.stderr
        worker = self.run("-m", "worker", "--burst")
        assert worker.returncode == 0, worker.stderr

    def make_due(self) -> None:
        """Time passes: every feed is due again."""
        for name in self.feeds:
            self.client.zadd("news:feeds:due", {name: 0})

    def articles(self) -> list[dict[str, str]]:
        out = []
        for key in self.client.scan_iter("news:article:*"):
            out.append({k.decode(): v.decode() for k, v in self.client.hgetall(key).items()})
        return out

    def stream(self) -> list[dict[str, str]]:
        return [{k.decode(): v.decode() for k, v in f.items()}
                for _, f in self.client.xrange("news:stream")]


@pytest.fixture
def newsroom(site: Site, run: Runner, client: redis.Redis) -> Iterator[Newsroom]:
    room = Newsroom(site, run, client)
    for path, name in PAGES.items():
        site.serve(path, name, "text/html" if "1251" in name else "text/html; charset=utf-8")
    for name, (path, fixture, content_type) in FEEDS.items():
        room.feeds[name] = Feed(site, site.fixture(fixture), content_type)
        site.routes[path] = room.feeds[name]
    write_feeds(run.cwd / "feeds.toml",
                {name: site.url(path) for name, (path, _, _) in FEEDS.items()})

    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("news:new")
    pubsub.get_message(timeout=1)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message:
                room.heard.append(json.loads(message["data"]))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    yield room
    stop.set()
    listener.join()
    pubsub.close()


def settle(room: Newsroom, count: int) -> None:
    """Wait until the listener has taken ``count`` messages off the socket."""
    for _ in range(100):
        if len(room.heard) >= count:
            return
        threading.Event().wait(0.05)


def test_feeds_to_redis_by_the_contract(newsroom: Newsroom) -> None:
    room, site = newsroom, newsroom.site
    room.ingest()

    # Every article page was fetched once, however many feeds link it.
    for path in PAGES:
        assert len(site.hits(path)) == 1, path
    articles = room.articles()
    by_url: dict[str, list[dict[str, str]]] = {}
    for article in articles:
        by_url.setdefault(article["canonical_url"], []).append(article)
    assert all(len(v) == 1 for v in by_url.values()), "an article stored twice"
    # 8 pages + the TheJournal item whose page is gone (its feed content stands in).
    assert len(articles) == 9

    for article in articles:
        for name in ARTICLE_FIELDS:
            assert name in article, (name, article["url"])
        assert ISO_UTC.match(article["published"]), article["published"]
        assert ISO_UTC.match(article["fetched"])
        assert article["text"].strip()
        assert room.client.zscore("news:recent", article["id"]) is not None
        if not article["duplicate_of"]:
            assert article["story"] == article["id"]

    mt = by_url[site.url("/mt/news/2025/02/20/leaders-agree-new-talks-a1001")][0]
    assert mt["feed"] in {"moscowtimes", "mt-politics", "legacy"}
    assert mt["published"] == "2025-02-20T11:05:00Z" or mt["feed"] != "moscowtimes"

    russian = by_url[site.url("/ru/novosti-a2001")][0]
    assert re.search("[а-яА-Я]", russian["title"]) and re.search("[а-яА-Я]", russian["text"])
    assert "\ufffd" not in russian["title"] + russian["text"]

    feed_only = [a for a in articles if a["source"] == "feed"]
    assert len(feed_only) == 1 and "404" in feed_only[0]["fetch_error"]

    # One stream entry per stored article; one announcement per new story.
    stream = room.stream()
    assert sorted(e["id"] for e in stream) == sorted(a["id"] for a in articles)
    new = [e for e in stream if e["type"] == "new"]
    settle(room, len(new))
    assert sorted(m["id"] for m in room.heard) == sorted(e["id"] for e in new)
    for message in room.heard:
        assert all(message[name] or name == "published" for name in EVENT_FIELDS)

    # The broken feed is an error on its own; the others were not stopped by it.
    status = {json.loads(line)["name"]: json.loads(line)
              for line in room.run.newswire("feeds", "--json").stdout.splitlines()}
    assert status["broken"]["errors"] == 1 and status["broken"]["last_error"]
    assert all(s["errors"] == 0 and s["last_status"] == 200
               for name, s in status.items() if name != "broken")


def test_unchanged_feeds_are_not_fetched_again_and_a_new_item_is_announced_once(
    newsroom: Newsroom,
) -> None:
    room, site = newsroom, newsroom.site
    room.ingest()
    stored, streamed = len(room.articles()), len(room.stream())
    settle(room, 1)
    requests_before = len(site.requests)

    room.make_due()
    room.ingest()
    feed_requests = site.requests[requests_before:]
    assert {r.path for r in feed_requests} == {path for path, _, _ in FEEDS.values()}
    for request in feed_requests:
        if request.path != "/broken/rss":
            assert request.headers.get("if-none-match", "").startswith('"v'), request.path
    assert len(room.articles()) == stored and len(room.stream()) == streamed
    heard = len(room.heard)

    # The Moscow Times publishes one more story.
    path = "/mt/news/2025/02/22/new-item-a1005"
    site.serve(path, "pages/mt-sanctions-review.html", "text/html; charset=utf-8")
    feed = room.feeds["moscowtimes"]
    item = (f"<item><title>One more story</title><link>{site.url(path)}</link>"
            f"<guid>{site.url(path)}</guid><pubDate>Sat, 22 Feb 2025 09:00:00 +0300</pubDate>"
            "<description>One more.</description></item>")
    feed.body = feed.body.replace(b"<item>", item.encode() + b"<item>", 1)
    feed.version += 1
    room.make_due()
    room.ingest()
    assert len(site.hits(path)) == 1
    assert len(room.articles()) == stored + 1
    assert len(room.stream()) == streamed + 1
    settle(room, heard + 1)
    threading.Event().wait(0.3)
    # Its text is the same as an earlier page's, so it may be a duplicate: then
    # nothing is announced. Either way, at most once.
    (entry,) = room.stream()[streamed:]
    assert len(room.heard) == heard + (1 if entry["type"] == "new" else 0)


def test_subscribe_from_start_then_resume_without_loss(newsroom: Newsroom) -> None:
    room = newsroom
    room.ingest()
    everything = room.run.newswire("subscribe", "--from-start", "--json", "--exit-when-idle",
                                   "--block-ms", "300")
    assert everything.returncode == 0, everything.stderr
    lines = [json.loads(line) for line in everything.stdout.splitlines()]
    new_ids = [e["id"] for e in room.stream() if e["type"] == "new"]
    assert [line["id"] for line in lines] == new_ids
    assert all(line["type"] == "new" for line in lines)

    # Killed after the third line: resuming from its id gives exactly the rest.
    resumed = room.run.newswire("subscribe", "--from", lines[2]["stream_id"], "--json",
                                "--exit-when-idle", "--block-ms", "300")
    assert [json.loads(line)["id"] for line in resumed.stdout.splitlines()] == new_ids[3:]


def test_recent_lists_stored_articles(newsroom: Newsroom) -> None:
    room = newsroom
    room.ingest()
    result = room.run.newswire("recent", "--json", "--limit", "100")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(room.articles())
    published = [room.client.zscore("news:recent", r["id"]) for r in rows]
    assert published == sorted(published, reverse=True)
    only = room.run.newswire("recent", "--json", "--feed", "thejournal")
    assert {json.loads(line)["feed"] for line in only.stdout.splitlines()} == {"thejournal"}


def test_a_burst_worker_exits_with_every_line_of_its_log_written(newsroom: Newsroom) -> None:
    # The worker ends its process without the interpreter's teardown (exit_now): what
    # it logged must all be out by then, down to RQ's last line.
    room = newsroom
    scheduler = room.run("-m", "scheduler", "--once")
    assert scheduler.returncode == 0, scheduler.stderr
    worker = room.run("-m", "worker", "--burst")
    assert worker.returncode == 0, worker.stderr
    stored = {a["id"] for a in room.articles()}
    logged = set(re.findall(r"newswire\.worker: article (\w+): (?:new|duplicate) ", worker.stderr))
    assert stored and logged == stored
    assert "unsubscribing from channel" in worker.stderr.splitlines()[-1]


def test_stored_texts_are_the_whole_bodies_without_boilerplate(newsroom: Newsroom) -> None:
    """Every NEWS-SHAPES page, stored by the real worker: exactly its expected body."""
    room = newsroom
    room.ingest()
    by_url = {a["canonical_url"]: a for a in room.articles()}
    for path, name in PAGES.items():
        want = (DATA / name.replace(".html", ".expected.txt")).read_text(encoding="utf-8")
        assert by_url[room.site.url(path)]["text"].split("\n") == want.splitlines(), name


def test_one_story_per_event_across_shapes_and_feeds(newsroom: Newsroom) -> None:
    room, site = newsroom, newsroom.site
    room.ingest()
    by_url = {a["canonical_url"]: a for a in room.articles()}
    original = by_url[site.url("/mt/news/2025/02/20/leaders-agree-new-talks-a1001")]
    copy = by_url[site.url("/agg/2025/02/20/leaders-agree-new-talks")]
    edited = by_url[site.url("/tj/leaders-agree-talks-6612345-Feb2025/")]
    rewrite = by_url[site.url("/rw/summit-rewrite")]
    related = by_url[site.url("/mt/news/2025/12/11/macron-reengagement-a1003")]
    sanctions = by_url[site.url("/mt/news/2025/02/21/sanctions-review-a1004")]

    # Shapes 1, 3 and 5 of one event: one story, announced once, whichever came first.
    event = [original, copy, edited, rewrite]
    assert len({a["story"] for a in event}) == 1
    (first,) = [a for a in event if not a["duplicate_of"]]
    assert first["story"] == first["id"]
    for article in event:
        if article is not first:
            assert article["duplicate_of"] and article["method"] in {
                "fingerprint", "minhash", "story"}, article["canonical_url"]
            assert article["similarity"] or article["method"] == "fingerprint"
    # The rewrite joined by story the wording it retells (or, if it came first, the
    # first of the other wording joined it): exactly one link is by story.
    (retold,) = [a for a in event if a["method"] == "story"]
    assert "entities=" in retold["evidence"]
    assert (rewrite is first) or retold is rewrite
    # Shape 4 and the next day's sanctions story, same people and site: their own stories.
    for article in (related, sanctions):
        assert article["story"] == article["id"] and not article["duplicate_of"]

    settle(room, 1)
    threading.Event().wait(0.3)
    announced = [m["id"] for m in room.heard]
    assert announced.count(first["id"]) == 1
    assert not {a["id"] for a in event if a is not first} & set(announced)
    stream = {e["id"]: e for e in room.stream()}
    assert stream[retold["id"]]["type"] == "duplicate"
    assert stream[retold["id"]]["method"] == "story"

    # `newswire recent --json` shows each decision with its evidence.
    rows = {json.loads(line)["id"]: json.loads(line) for line in
            room.run.newswire("recent", "--json", "--limit", "100").stdout.splitlines()}
    shown = rows[retold["id"]]
    assert (shown["story"], shown["duplicate_of"], shown["method"]) == (
        first["id"], retold["duplicate_of"], "story")
    assert float(shown["similarity"]) >= 0.6 and shown["evidence"]
