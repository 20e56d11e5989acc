"""The commit script against a real Redis: one atomic decide-store-index-announce."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import redis

from newswire.fingerprint import fingerprint
from newswire.model import ArticleRecord, FeedEntry, iso
from newswire.schema import COMMIT_ARTICLE, article_id
from newswire.settings import Settings
from newswire.store import Store

NOW = datetime(2025, 2, 20, 12, 0, tzinfo=UTC)
TEXT = "The leaders agreed to hold new talks.\nOfficials said the date is not set."


def record(url: str, text: str = TEXT, *, feed: str = "mt", page_url: str = "",
           published: str = "2025-02-20T11:05:00Z") -> ArticleRecord:
    return ArticleRecord(
        id=article_id(url), url=url + "?utm_source=rss", canonical_url=url, feed=feed,
        title="Leaders agree", text=text, published=published, fetched=iso(NOW),
        fingerprint=fingerprint(text), guid=url, page_canonical_url=page_url,
    )


def make_store(client: redis.Redis, redis_url: str, **changes: object) -> Store:
    return Store(client, Settings(redis_url=redis_url).with_(**changes))


class Announcements:
    """Collects what is published on news:new, from before the commit on."""

    def __init__(self, client: redis.Redis, channel: str = "news:new") -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.pubsub.get_message(timeout=1)  # the subscribe confirmation

    def drain(self) -> list[dict[str, str]]:
        messages = []
        while (message := self.pubsub.get_message(timeout=0.2)) is not None:
            messages.append(json.loads(message["data"]))
        return messages


def test_new_article_is_stored_indexed_streamed_and_announced(client, redis_url) -> None:
    store = make_store(client, redis_url)
    heard = Announcements(client)
    result = store.commit(record("https://mt.example/a"), NOW)

    assert result.type == "new" and result.story == result.id and not result.duplicate_of
    article = store.article(result.id)
    for name in ("id", "url", "canonical_url", "feed", "title", "text", "published", "fetched",
                 "fingerprint", "story", "duplicate_of"):
        assert name in article, name
    assert article["published"] == "2025-02-20T11:05:00Z"
    assert client.zscore("news:recent", result.id) == NOW.replace(hour=11, minute=5).timestamp()
    (entry_id, fields), = client.xrange("news:stream")
    assert fields[b"type"] == b"new" and fields[b"id"].decode() == result.id
    assert entry_id.decode() == result.stream_id
    (message,) = heard.drain()
    assert {k: message[k] for k in ("id", "title", "feed", "published", "story")} == {
        "id": result.id, "title": "Leaders agree", "feed": "mt",
        "published": "2025-02-20T11:05:00Z", "story": result.id}
    assert message["url"] == "https://mt.example/a?utm_source=rss"
    ttl = client.ttl(f"news:article:{result.id}")
    assert 0 < ttl <= 30 * 86_400


def test_a_retried_commit_changes_nothing(client, redis_url) -> None:
    store = make_store(client, redis_url)
    first = store.commit(record("https://mt.example/a"), NOW)
    heard = Announcements(client)
    again = store.commit(record("https://mt.example/a"), NOW)
    assert again.type == "exists" and again.id == first.id
    assert client.xlen("news:stream") == 1
    assert heard.drain() == []


def test_same_text_elsewhere_is_a_duplicate_and_not_announced(client, redis_url) -> None:
    store = make_store(client, redis_url)
    first = store.commit(record("https://mt.example/a"), NOW)
    heard = Announcements(client)
    copy = store.commit(record("https://agg.example/b", TEXT.upper().replace("\n", "\n\n"),
                               feed="agg"), NOW)
    assert copy.type == "duplicate" and copy.duplicate_of == first.id
    assert copy.story == first.id and copy.method == "fingerprint"
    assert store.article(copy.id)["duplicate_of"] == first.id
    types = [f[b"type"] for _, f in client.xrange("news:stream")]
    assert types == [b"new", b"duplicate"]
    assert heard.drain() == []


def test_page_canonical_url_links_two_feed_urls(client, redis_url) -> None:
    store = make_store(client, redis_url)
    first = store.commit(record("https://mt.example/a"), NOW)
    other = store.commit(record("https://mt.example/amp/a", "Different words entirely.",
                                page_url="https://mt.example/a"), NOW)
    assert other.type == "duplicate" and other.method == "canonical_url"
    assert other.duplicate_of == first.id


def test_two_workers_committing_copies_at_once_announce_once(redis_url) -> None:
    clients = [redis.Redis.from_url(redis_url) for _ in range(8)]
    results = []
    barrier = threading.Barrier(len(clients))

    def commit(i: int) -> None:
        store = make_store(clients[i], redis_url)
        barrier.wait()
        results.append(store.commit(record(f"https://site{i}.example/a"), NOW))

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.type for r in results) == ["duplicate"] * 7 + ["new"]
    (new,) = [r for r in results if r.type == "new"]
    assert {r.story for r in results} == {new.id}
    for c in clients:
        c.close()


def test_recent_newest_first_by_feed_and_since(client, redis_url) -> None:
    store = make_store(client, redis_url)
    for day, feed in ((1, "mt"), (2, "tj"), (3, "mt")):
        store.commit(record(f"https://x.example/{day}", f"text {day}", feed=feed,
                            published=f"2025-02-0{day}T00:00:00Z"), NOW)
    titles = [a["canonical_url"] for a in store.recent(limit=10)]
    assert titles == ["https://x.example/3", "https://x.example/2", "https://x.example/1"]
    assert [a["feed"] for a in store.recent(limit=10, feed="mt")] == ["mt", "mt"]
    since = datetime(2025, 2, 2, tzinfo=UTC)
    assert len(store.recent(limit=10, since=since)) == 2
    assert len(store.recent(limit=1)) == 1


def test_old_articles_stay_in_recent_until_they_expire(client, redis_url) -> None:
    store = make_store(client, redis_url, retention_days=1)
    old_record = record("https://x.example/old", "old text", published="2020-01-01T00:00:00Z")
    old = store.commit(old_record, NOW)
    assert client.zscore("news:recent", old.id) is not None  # published long ago, stored now
    store.commit(record("https://x.example/new", "new text"), NOW + timedelta(days=2))
    assert client.zscore("news:recent", old.id) is None  # its hash expired: index follows


# -- A commit in steps: sent, then its reply read while the next article is made --------


def test_commits_sent_ahead_store_each_article_in_order(client, redis_url) -> None:
    store = make_store(client, redis_url)
    heard = Announcements(client)
    first = store.start_commit(record("https://mt.example/a"), NOW)
    first.send()
    # The next article's probe is made while Redis runs the first one's script.
    second = store.start_commit(record("https://tj.example/b", "A different story."), NOW)
    a = first.result()
    second.send()
    b = second.result()
    assert (a.type, b.type) == ("new", "new")
    assert [m["id"] for m in heard.drain()] == [a.id, b.id]
    assert [e[1][b"id"].decode() for e in client.xrange("news:stream")] == [a.id, b.id]


def test_a_commit_sent_to_a_redis_without_the_script_loads_it_and_stores_once(
    client, redis_url
) -> None:
    store = make_store(client, redis_url)
    client.script_flush()  # as after a restart of Redis
    commit = store.start_commit(record("https://mt.example/a"), NOW)
    commit.send()
    result = commit.result()
    assert result.type == "new"
    assert store.article(result.id)["url"] == "https://mt.example/a?utm_source=rss"
    assert client.xlen("news:stream") == 1


def test_a_commit_whose_reply_is_lost_finds_its_article_stored(
    client, redis_url, monkeypatch
) -> None:
    store = make_store(client, redis_url)
    client.script_load(COMMIT_ARTICLE)
    commit = store.start_commit(record("https://mt.example/a"), NOW)
    commit.send()
    deadline = time.monotonic() + 5
    while not client.exists(f"news:article:{article_id('https://mt.example/a')}"):
        assert time.monotonic() < deadline
        time.sleep(0.01)

    # The script ran; its reply is lost on the way.
    def lost(self: redis.Redis, *args: object, **kwargs: object) -> None:
        monkeypatch.undo()
        raise redis.ConnectionError("Connection reset by peer")

    monkeypatch.setattr(redis.Redis, "parse_response", lost)
    result = commit.result()
    # Called again, as the client's own retry would: the URL is stored.
    assert (result.type, result.id) == ("exists", article_id("https://mt.example/a"))
    assert client.xlen("news:stream") == 1


def test_seen_marks_for_thousands_of_entries(client, redis_url) -> None:
    # A tick's entries are remembered a thousand at a time; each by URL and by guid.
    store = make_store(client, redis_url, retention_days=2)
    entries = [FeedEntry(feed="mt", link=f"https://mt.example/{n}?utm_source=rss",
                         canonical_url=f"https://mt.example/{n}", guid=f"guid-{n}")
               for n in range(2500)]
    assert store.unseen(entries) == entries
    store.mark_seen((e, f"job-{n // 32}") for n, e in enumerate(entries))
    assert store.unseen(entries) == []
    for n in (0, 999, 1000, 2499):
        for key in (store.keys.seen_url(entries[n].canonical_url),
                    store.keys.seen_guid(entries[n].guid)):
            assert client.get(key) == f"job-{n // 32}".encode()
            assert 0 < client.ttl(key) <= 2 * 86_400


def test_an_entry_payload_is_json_and_comes_back_whole() -> None:
    entry = FeedEntry(feed="mt", link="https://mt.example/a?utm_source=rss",
                      canonical_url="https://mt.example/a", guid="a-1", title="Leaders",
                      published="2025-02-20T11:05:00Z", summary="<p>Talks</p>",
                      content="<p>Talks agreed</p>", authors=("Staff", "Agencies"))
    payload = json.loads(json.dumps(entry.to_payload()))
    assert payload["authors"] == ["Staff", "Agencies"] and payload["guid"] == "a-1"
    assert FeedEntry.from_payload(payload) == entry


def test_feed_states_saved_and_read_for_thousands_of_feeds(client, redis_url) -> None:
    # A tick of many feeds is saved and read a thousand at a time; a poll that changed
    # no field still moves the feed's next check (ending its lease).
    store = make_store(client, redis_url)
    names = [f"feed-{n}" for n in range(2500)]
    saves = [(name, {} if n % 3 == 0 else {"etag": f'"v{n}"', "status": "304"},
              1_750_000_000.5 + n) for n, name in enumerate(names)]
    store.save_feed_states(saves)
    states = store.feed_states(names + ["never-polled"])
    assert states == {**{name: dict(changes) for name, changes, _ in saves},
                      "never-polled": {}}
    assert client.zscore(store.keys.feeds_due, "feed-2499") == 1_750_000_000.5 + 2499
    assert client.zcard(store.keys.feeds_due) == 2500
    store.save_feed_states([("feed-1", {"status": "200"}, 1_750_009_999.0)])
    assert store.feed_states(["feed-1"]) == {"feed-1": {"etag": '"v1"', "status": "200"}}
