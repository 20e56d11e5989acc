"""The three levels of dedup through the real commit, on a real Redis.

Texts are the clean paragraphs of the NEWS-SHAPES fixtures (tests/data/pages/*.expected.txt):
the AFP original, its aggregator copy (shape 1), TheJournal's edited version (shape 5),
the paraphrased rewrite (shape 3) and the related story ten months later (shape 4).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from newswire import stories
from newswire.cli import build_parser
from newswire.dedup import MIN_SHARED_TERMS, Decision, probe
from newswire.errors import ConfigError, StoreError
from newswire.fingerprint import fingerprint
from newswire.model import ArticleRecord, CommitResult, iso
from newswire.neardup import MINHASH_VERSION, bands_of
from newswire.schema import article_id
from newswire.settings import Settings
from newswire.store import COMMIT_ATTEMPTS, Store

from .test_store import Announcements

PAGES = Path(__file__).parent / "data" / "pages"
NOW = datetime(2025, 2, 20, 18, 0, tzinfo=UTC)


def text_of(name: str) -> str:
    return (PAGES / f"{name}.expected.txt").read_text(encoding="utf-8").strip()


ORIGINAL = text_of("mt-leaders-agree")
COPY = text_of("agg-leaders-agree")
EDITED = text_of("tj-leaders-agree")
REWRITE = text_of("rw-summit-rewrite")
RELATED = text_of("mt-macron-reengagement")
SANCTIONS = text_of("mt-sanctions-review")
RUBLE = text_of("mt-ruble-steadies")


def record(url: str, text: str, published: str = "2025-02-20T11:05:00Z",
           feed: str = "mt") -> ArticleRecord:
    return ArticleRecord(
        id=article_id(url), url=url, canonical_url=url, feed=feed, title=url.rsplit("/", 1)[-1],
        text=text, published=published, fetched=iso(NOW), fingerprint=fingerprint(text),
        guid=url,
    )


@pytest.fixture
def store(client: redis.Redis, redis_url: str) -> Store:
    return Store(client, Settings(redis_url=redis_url))


def stream_types(client: redis.Redis) -> list[tuple[str, str]]:
    return [(f[b"type"].decode(), f[b"method"].decode()) for _, f in client.xrange("news:stream")]


def test_aggregator_copy_is_the_same_article_announced_once(store, client) -> None:
    heard = Announcements(client)
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    # The copy's text differs only in a split paragraph: the exact fingerprint matches.
    copy = store.commit(record("https://agg.example/leaders", COPY, feed="agg"), NOW)
    assert (first.type, copy.type) == ("new", "duplicate")
    assert copy.duplicate_of == first.id and copy.story == first.id
    assert copy.method == "fingerprint"
    assert [m["id"] for m in heard.drain()] == [first.id]
    assert stream_types(client) == [("new", ""), ("duplicate", "fingerprint")]


def test_edited_copy_is_found_by_minhash_with_its_similarity(store, client) -> None:
    heard = Announcements(client)
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    # The copy with a byline, a date line and an "Original url" line left in by the cleaner,
    # and one paragraph corrected: no longer the same fingerprint.
    variant = ("By Anne Martin for AFP\n20 February 2025\n" + COPY.replace("19 countries",
               "20 countries") + "\nOriginal url: https://mt.example/leaders")
    copy = store.commit(record("https://agg.example/leaders", variant, feed="agg"), NOW)
    assert copy.type == "duplicate" and copy.method == "minhash"
    assert copy.duplicate_of == first.id and copy.story == first.id
    assert 0.8 < float(copy.similarity) < 1.0
    article = store.article(copy.id)
    assert (article["method"], article["similarity"]) == ("minhash", copy.similarity)
    assert [m["id"] for m in heard.drain()] == [first.id]
    (_, event), _ = reversed(client.xrange("news:stream"))
    assert event[b"type"] == b"duplicate" and event[b"similarity"].decode() == copy.similarity


def test_thejournal_edit_of_the_agency_story_is_the_same_article(store) -> None:
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    edited = store.commit(record("https://tj.example/leaders", EDITED,
                                 published="2025-02-20T13:40:00Z"), NOW)
    assert edited.type == "duplicate" and edited.method == "minhash"
    assert edited.story == first.id and 0.5 <= float(edited.similarity) < 0.9


def test_rewrite_joins_the_story_and_is_not_announced(store, client) -> None:
    heard = Announcements(client)
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    rewrite = store.commit(record("https://rw.example/summit", REWRITE,
                                  published="2025-02-20T16:10:00Z"), NOW)
    assert rewrite.type == "duplicate" and rewrite.method == "story"
    assert rewrite.story == first.id and rewrite.duplicate_of == first.id
    article = store.article(rewrite.id)
    assert article["story"] == first.id and float(article["similarity"]) >= 0.6
    assert "entities=" in article["evidence"] and "hours=5.1" in article["evidence"]
    assert [m["id"] for m in heard.drain()] == [first.id]
    assert stream_types(client)[-1] == ("duplicate", "story")


@pytest.mark.parametrize("stored_without", [False, True], ids=["as-stored", "older-article"])
def test_an_article_keeps_its_names_and_figures_for_later_verifications(
    store, client, stored_without,
) -> None:
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    names, figures = client.hmget(f"news:article:{first.id}", ["entities", "figures"])
    assert set(names.decode().split()) == set(stories.entities(ORIGINAL))
    assert "ostrovsky" in names.decode().split()
    assert set(figures.decode().split()) == stories.numbers(ORIGINAL) and b"2.4" in figures
    if stored_without:  # stored by a version that kept neither: found from its text
        client.hdel(f"news:article:{first.id}", "entities", "figures")
    rewrite = store.commit(record("https://rw.example/summit", REWRITE,
                                  published="2025-02-20T16:10:00Z"), NOW)
    assert (rewrite.method, rewrite.story) == ("story", first.id)


def test_rewrite_of_a_copy_joins_the_first_articles_story(store) -> None:
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    store.commit(record("https://tj.example/leaders", EDITED), NOW)
    rewrite = store.commit(record("https://rw.example/summit", REWRITE), NOW)
    assert rewrite.story == first.id


def test_related_story_months_later_stays_its_own_story(store, client) -> None:
    heard = Announcements(client)
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    store.commit(record("https://rw.example/summit", REWRITE), NOW)
    later = NOW + timedelta(days=294)
    related = store.commit(record("https://mt.example/macron", RELATED,
                                  published="2025-12-11T15:20:00Z"), later)
    assert related.type == "new" and related.story == related.id and not related.duplicate_of
    assert [m["id"] for m in heard.drain()] == [first.id, related.id]


def test_related_story_stays_apart_even_published_the_same_day(store) -> None:
    # Time alone must not be what keeps shape 4 apart: its facts are different.
    store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    related = store.commit(record("https://mt.example/macron", RELATED), NOW)
    sanctions = store.commit(record("https://mt.example/sanctions", SANCTIONS,
                                    published="2025-02-21T07:30:00Z"), NOW)
    ruble = store.commit(record("https://mt.example/ruble", RUBLE), NOW)
    assert [r.type for r in (related, sanctions, ruble)] == ["new"] * 3


def test_rewrite_outside_the_story_window_is_a_new_story(client, redis_url) -> None:
    store = Store(client, Settings(redis_url=redis_url, story_window_hours=2))
    store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    rewrite = store.commit(record("https://rw.example/summit", REWRITE,
                                  published="2025-02-20T16:10:00Z"), NOW)
    assert rewrite.type == "new"


def test_thresholds_come_from_settings(client, redis_url) -> None:
    strict = Store(client, Settings(redis_url=redis_url, neardup_threshold=0.95,
                                    story_threshold=0.95))
    strict.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    assert strict.commit(record("https://tj.example/leaders", EDITED), NOW).type == "new"
    assert strict.commit(record("https://rw.example/summit", REWRITE), NOW).type == "new"


def committed(store: Store, records: list[ArticleRecord], now: datetime) -> list[CommitResult]:
    return [store.commit(r, now) for r in records]


# The commit script posts to a bucket it has read (a commit) with fewer calls than to
# one it has not (a bulk load): both must expire and cap alike.
WAYS = pytest.mark.parametrize("way", [committed, Store.load], ids=["commit", "load"])


@WAYS
def test_index_entries_expire_with_the_article(client, redis_url, way) -> None:
    store = Store(client, Settings(redis_url=redis_url, retention_days=1))
    [first] = way(store, [record("https://mt.example/leaders", ORIGINAL)], NOW)
    bands = list(client.scan_iter(f"news:lsh:{MINHASH_VERSION}:*"))
    terms = list(client.scan_iter("news:term:*"))
    assert len(bands) == 16 and len(terms) >= 8
    for key in bands + terms:
        assert 0 < client.ttl(key) <= 86_400
        assert client.zscore(key, first.id) == NOW.timestamp() + 86_400
    # Two days on (the keys' own TTLs run on Redis's clock, so they are still here),
    # the commit script ignores the expired members.
    later = NOW + timedelta(days=2)
    [again] = way(store, [record("https://tj.example/leaders", EDITED)], later)
    assert again.type == "new"
    assert set(bands_of(ORIGINAL)) & set(bands_of(EDITED))


@WAYS
def test_a_full_bucket_drops_its_expired_members_first(client, redis_url, way) -> None:
    store = Store(client, Settings(redis_url=redis_url, retention_days=1, index_bucket_max=3))
    updates = [record(f"https://mt.example/{i}", f"{ORIGINAL}\nUpdate number {i}.")
               for i in range(6)]
    gone = {r.id for r in way(store, updates[:3], NOW)}
    way(store, updates[3:], NOW + timedelta(days=2))
    full = 0
    for key in client.scan_iter(f"news:lsh:{MINHASH_VERSION}:*"):
        band = key.decode().rsplit(":", 1)[1]
        posted = {u.id for u in updates[3:] if band in bands_of(u.text)}
        members = {m.decode() for m in client.zrange(key, 0, -1)}
        assert posted <= members and len(members) <= 3  # no live one dropped for an old one
        if len(posted) == 3:
            full += 1
            assert not members & gone
    assert full


@WAYS
def test_buckets_and_postings_are_capped(client, redis_url, way) -> None:
    store = Store(client, Settings(redis_url=redis_url, index_bucket_max=3))
    for i in range(6):
        way(store, [record(f"https://mt.example/{i}", f"{ORIGINAL}\nUpdate number {i}.")], NOW)
    sizes = [client.zcard(k) for k in client.scan_iter("news:lsh:*")]
    sizes += [client.zcard(k) for k in client.scan_iter("news:term:*")]
    assert max(sizes) == 3


def commit_together(redis_url: str, records: list[ArticleRecord]) -> list[CommitResult]:
    """Commit each record from its own thread and connection, released at one instant."""
    clients = [redis.Redis.from_url(redis_url) for _ in records]
    results: list[CommitResult] = []
    barrier = threading.Barrier(len(records))

    def commit(i: int) -> None:
        store = Store(clients[i], Settings(redis_url=redis_url))
        article = records[i]
        barrier.wait()
        results.append(store.commit(article, NOW))

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(len(records))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return results


@pytest.mark.parametrize("round_", range(3))
def test_two_workers_storing_two_edited_copies_at_once_announce_once(
    redis_url, client, round_
) -> None:
    heard = Announcements(client)
    results = commit_together(redis_url, [
        record("https://mt.example/leaders", ORIGINAL),
        record("https://tj.example/leaders", EDITED),
    ])
    assert sorted(r.type for r in results) == ["duplicate", "new"]
    (new,) = [r for r in results if r.type == "new"]
    (dup,) = [r for r in results if r.type == "duplicate"]
    assert dup.method == "minhash" and dup.story == new.id
    assert [m["id"] for m in heard.drain()] == [new.id]


def test_original_and_rewrite_stored_at_once_make_one_story(redis_url, client) -> None:
    heard = Announcements(client)
    results = commit_together(redis_url, [
        record("https://mt.example/leaders", ORIGINAL),
        record("https://rw.example/summit", REWRITE),
        record("https://mt.example/macron", RELATED),
    ])
    by_url = {client.hget(f"news:article:{r.id}", "url").decode(): r for r in results}
    story = by_url["https://mt.example/leaders"].story
    assert by_url["https://rw.example/summit"].story == story
    assert by_url["https://mt.example/macron"].type == "new"
    assert len(heard.drain()) == 2


def test_candidates_the_worker_has_not_seen_are_returned_not_skipped(store, client) -> None:
    # A worker that looked before the original was stored proposes nothing, having seen
    # nothing; the commit script finds the new bucket member and hands it back instead of
    # storing, and the store verifies it and calls again.
    copy = record("https://tj.example/leaders", EDITED)
    article = probe(copy.id, copy.text, NOW)
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    raced = store._run_commit(copy, article, NOW, set(), Decision(), "", check=True)
    assert raced[0] == b"retry" and first.id.encode() in raced[7]
    assert not client.exists(f"news:article:{copy.id}")
    seen, decision, _ = store.verify(article, raced)
    assert seen == {first.id} and decision.near_id == first.id
    assert store.commit(copy, NOW).duplicate_of == first.id


def test_a_retry_hands_back_the_best_candidates_of_each_kind_with_their_texts(
    client, redis_url
) -> None:
    # Five stored updates of one article: every one a band member of a sixth, and a
    # posting member. The reply names at most NEWSWIRE_DEDUP_CANDIDATES of each kind,
    # most shared first, ties by id, and carries what verifies them.
    store = Store(client, Settings(redis_url=redis_url, dedup_candidates=2))
    updates = [record(f"https://mt.example/{i}", f"{ORIGINAL}\nUpdate number {i}.")
               for i in range(6)]
    store.load(updates[:5], NOW)
    last = updates[5]
    article = probe(last.id, last.text, NOW)
    reply = store._run_commit(last, article, NOW, set(), Decision(), "", check=True)
    assert reply[0] == b"retry"
    for flat, best in ((reply[7], reply[10]), (reply[8], reply[11])):
        shared = {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        assert len(shared) == 5
        ranked = sorted(shared, key=lambda m: (-shared[m], m))[:2]
        assert [b.decode() for b in best] == ranked
    fetched = reply[12]
    by_id = {fetched[i].decode(): fetched[i + 1:i + 5] for i in range(0, len(fetched), 5)}
    assert set(by_id) == {b.decode() for b in [*reply[10], *reply[11]]}
    texts = {u.id: u.text for u in updates}
    for cid, (text, published, entities, _) in by_id.items():
        assert text.decode() == texts[cid] and published.decode() == "2025-02-20T11:05:00Z"
        assert entities  # stored with each article, read instead of found again


def zsets_read(client: redis.Redis) -> int:
    """How many bucket and posting reads Redis has run so far (and one sweep of the
    expired ids each commit that writes)."""
    return int(client.info("commandstats").get("cmdstat_zrangebyscore", {}).get("calls", 0))


def committing_meanwhile(
    store: Store, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    records: Callable[[int], list[ArticleRecord]],
) -> list[int]:
    """Make another worker commit ``records(n)`` while ``store`` verifies its candidates
    the n-th time. Returned: for each verification, the reads Redis had run at its end."""
    other = Store(redis.Redis.from_url(redis_url), store.settings)
    verify, calls = store.verify, []

    def verify_while_another_commits(*args):  # type: ignore[no-untyped-def]
        found = verify(*args)
        for r in records(len(calls) + 1):
            other.commit(r, NOW)
        calls.append(zsets_read(other.redis))
        return found

    monkeypatch.setattr(store, "verify", verify_while_another_commits)
    return calls


def first_time(*records: ArticleRecord) -> Callable[[int], list[ArticleRecord]]:
    return lambda n: list(records) if n == 1 else []


def racing(store: Store, redis_url: str, monkeypatch: pytest.MonkeyPatch, rounds: int):
    """Make another worker store a fresh edit of ORIGINAL while ``store`` verifies its
    candidates, the first ``rounds`` times: what the store sees in its buckets is then
    always one member short. One element a verification in the returned list."""
    return committing_meanwhile(store, redis_url, monkeypatch, lambda n: [
        record(f"https://agg{n}.example/leaders",
               f"{ORIGINAL}\nReported by agency desk number {n}.")] if n <= rounds else [])


def test_a_match_indexed_between_the_two_calls_is_verified_too(
    store, client, redis_url, monkeypatch
) -> None:
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    calls = racing(store, redis_url, monkeypatch, rounds=1)
    copy = store.commit(record("https://tj.example/leaders", EDITED), NOW)
    assert len(calls) == 2  # the racer's edit came back with a second retry
    assert copy.type == "duplicate" and copy.method == "minhash" and copy.story == first.id


def unrelated(n: int) -> ArticleRecord:
    return record(f"https://isle{n}.example/ferry", (
        f"Island number {n} keeps its ferry timetable for winter {1900 + n}.\n"
        f"Crossings leave every {n + 2} hours from pier {n}, the harbour office said."))


def test_the_next_call_reads_the_index_again_only_when_something_new_may_be_in_it(
    store, client, redis_url, monkeypatch
) -> None:
    # Whether nothing was committed between the two calls or only articles that are no
    # candidates: the second call reads no bucket or posting.
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    for meanwhile, text in (([], EDITED), ([unrelated(1), unrelated(2)], REWRITE)):
        calls = committing_meanwhile(store, redis_url, monkeypatch, first_time(*meanwhile))
        assert store.commit(record(f"https://{len(meanwhile)}.example/a", text), NOW).story \
            == first.id
        assert len(calls) == 1
        assert zsets_read(client) - calls[0] == 1  # only the sweep of expired ids


def test_a_story_candidate_committed_between_the_two_calls_is_verified_too(
    store, redis_url, monkeypatch
) -> None:
    # The rewrite shares no band with the edit, only names and figures: it is found
    # among the commits since the reading by its postings alone.
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    edited = record("https://tj.example/leaders", EDITED)
    rewrite = record("https://rw.example/summit", REWRITE)
    mine, theirs = probe(edited.id, EDITED, NOW), probe(rewrite.id, REWRITE, NOW)
    assert not set(mine.bands) & set(theirs.bands)
    assert len(set(mine.terms) & set(theirs.terms)) >= MIN_SHARED_TERMS
    calls = committing_meanwhile(store, redis_url, monkeypatch,
                                 first_time(unrelated(1), rewrite))
    assert store.commit(edited, NOW).duplicate_of == first.id
    assert len(calls) == 2  # the rewrite came back with a second retry


def test_more_commits_between_the_calls_than_are_looked_at_read_everything_again(
    store, redis_url, monkeypatch
) -> None:
    # 17 commits meanwhile, the candidate last: more than the script looks at one by one.
    store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    racer = record("https://agg.example/leaders", f"{ORIGINAL}\nReported by the agency desk.")
    calls = committing_meanwhile(store, redis_url, monkeypatch,
                                 first_time(*(unrelated(n) for n in range(17)), racer))
    assert store.commit(record("https://tj.example/leaders", EDITED), NOW).type == "duplicate"
    assert len(calls) == 2


def test_a_stream_capped_too_short_to_hold_the_commits_since_reads_everything_again(
    client, redis_url, monkeypatch
) -> None:
    store = Store(client, Settings(redis_url=redis_url).with_(stream_maxlen=16))
    store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    calls = committing_meanwhile(store, redis_url, monkeypatch, first_time())
    edited = record("https://tj.example/leaders", EDITED)
    article = probe(edited.id, edited.text, NOW)
    assert store.commit(edited, NOW).type == "duplicate"
    assert zsets_read(client) - calls[0] == len(article.bands) + len(article.terms) + 1


def counting_verify(store: Store, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> list[int]:
    verify, calls = store.verify, []

    def counted(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        if fail:
            raise RuntimeError("verification failed")
        return verify(*args)

    monkeypatch.setattr(store, "verify", counted)
    return calls


def test_an_advanced_commit_has_verified_and_sent_and_only_reads_at_the_end(
    store, monkeypatch
) -> None:
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    calls = counting_verify(store, monkeypatch)
    commit = store.start_commit(record("https://tj.example/leaders", EDITED), NOW)
    commit.send()
    commit.advance()
    assert calls == [1]
    result = commit.result()
    assert calls == [1] and (result.method, result.duplicate_of) == ("minhash", first.id)
    assert commit.result() == result  # ended: asked again, the same


def test_what_goes_wrong_while_advancing_is_raised_by_the_result(store, monkeypatch) -> None:
    store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    counting_verify(store, monkeypatch, fail=True)
    commit = store.start_commit(record("https://tj.example/leaders", EDITED), NOW)
    commit.send()
    commit.advance()  # raises nothing
    with pytest.raises(RuntimeError, match="verification failed"):
        commit.result()


def test_the_store_gives_up_when_others_keep_racing_it(
    store, client, redis_url, monkeypatch
) -> None:
    store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    calls = racing(store, redis_url, monkeypatch, rounds=COMMIT_ATTEMPTS)
    with pytest.raises(StoreError, match="gave up"):
        store.commit(record("https://tj.example/leaders", EDITED), NOW)
    assert len(calls) == COMMIT_ATTEMPTS  # none verified for a call that never comes
    assert not client.exists(f"news:article:{article_id('https://tj.example/leaders')}")


def test_a_proposed_match_gone_before_the_commit_is_looked_for_again(
    store, client, monkeypatch
) -> None:
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    verify = store.verify

    def verify_then_expire(*args):  # type: ignore[no-untyped-def]
        found = verify(*args)
        client.delete(f"news:article:{first.id}")  # expired between the two calls
        return found

    monkeypatch.setattr(store, "verify", verify_then_expire)
    copy = store.commit(record("https://tj.example/leaders", EDITED), NOW)
    assert copy.type == "new" and copy.duplicate_of == ""


def test_an_article_with_no_candidate_is_stored_in_one_call(store, client) -> None:
    store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    before = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    stored = store.commit(record("https://isle.example/ferry", (
        "The island ferry will keep its winter timetable until the harbour is dredged.\n"
        "Crossings leave every two hours; the last one from the mainland at eight.")), NOW)
    assert stored.type == "new"
    assert client.info("commandstats")["cmdstat_evalsha"]["calls"] == before + 1


def test_site_blocks_count_pages_with_a_text_of_their_own(store, client) -> None:
    def with_site(url: str, text: str, site: str) -> ArticleRecord:
        return replace(record(url, text), site=site, blocks=("b1", "b2"))

    store.commit(with_site("https://mt.example/leaders", ORIGINAL, "mt.example"), NOW)
    store.commit(with_site("https://mt.example/amp/leaders", COPY, "mt.example"), NOW)  # exact
    store.commit(with_site("https://rw.example/summit", REWRITE, "rw.example"), NOW)  # story
    mt = client.hgetall(store.keys.site("mt.example"))
    rw = client.hgetall(store.keys.site("rw.example"))
    assert mt[b"pages"] == b"1" and rw[b"pages"] == b"1" and rw[b"b1"] == b"1"


def test_site_blocks_counted_alike_with_and_without_the_learned_check(client,
                                                                     redis_url) -> None:
    # A worker's commit checks the page's blocks against the site's counts, and then
    # writes the counts it read, each one more; without the check, each is incremented.
    pages = [(ORIGINAL, ("b1", "b2")), (text_of("mt-sanctions-review"), ("b2", "b3")),
             (text_of("mt-ruble-steadies"), ("b1", "b2", "b3", "b4"))]
    sites = []
    for prefix, check in (("checked", True), ("plain", False)):
        store = Store(client, Settings(redis_url=redis_url, prefix=prefix))
        for n, (text, blocks) in enumerate(pages):
            made = replace(record(f"https://mt.example/{n}", text), site="mt.example",
                           blocks=blocks)
            assert store.commit(made, NOW, rebuild=(lambda m=made: m) if check else None
                                ).type == "new"
        sites.append(client.hgetall(store.keys.site("mt.example")))
    assert sites[0] == sites[1] == {b"pages": b"3", b"b1": b"2", b"b2": b"3", b"b3": b"2",
                                    b"b4": b"1"}


def test_bulk_load_indexes_like_commit(store) -> None:
    loaded = store.load([record("https://mt.example/leaders", ORIGINAL),
                         record("https://agg.example/leaders", COPY)], NOW)
    assert [r.type for r in loaded] == ["new", "duplicate"]
    edited = store.commit(record("https://tj.example/leaders", EDITED), NOW)
    assert edited.method == "minhash" and edited.duplicate_of == loaded[0].id


def test_dedup_settings_from_the_environment() -> None:
    env = {"NEWSWIRE_NEARDUP_THRESHOLD": "0.7", "NEWSWIRE_STORY_THRESHOLD": "0.8",
           "NEWSWIRE_STORY_WINDOW_HOURS": "24", "NEWSWIRE_INDEX_BUCKET_MAX": "32",
           "NEWSWIRE_DEDUP_CANDIDATES": "5", "NEWSWIRE_NEARDUP_CONTAINMENT": "0.95"}
    s = Settings.from_env(env, cwd=Path("/nonexistent"))
    assert (s.neardup_threshold, s.story_threshold, s.story_window_hours, s.index_bucket_max,
            s.dedup_candidates, s.neardup_containment) == (0.7, 0.8, 24.0, 32, 5, 0.95)
    defaults = Settings.from_env({}, cwd=Path("/nonexistent"))
    assert (defaults.neardup_threshold, defaults.story_window_hours) == (0.5, 72.0)
    for bad in ("1.5", "-0.1", "half"):
        with pytest.raises(ConfigError, match="NEWSWIRE_STORY_THRESHOLD"):
            Settings.from_env({"NEWSWIRE_STORY_THRESHOLD": bad}, cwd=Path("/nonexistent"))


def test_recent_shows_each_decision(store, redis_url) -> None:
    first = store.commit(record("https://mt.example/leaders", ORIGINAL), NOW)
    copy = store.commit(record("https://agg.example/leaders", COPY), NOW)
    rewrite = store.commit(record("https://rw.example/summit", REWRITE), NOW)
    settings = Settings(redis_url=redis_url)

    def recent(*flags: str) -> list[str]:
        args = build_parser().parse_args(["recent", *flags])
        out = io.StringIO()
        assert args.handler(args, settings, out) == 0
        return out.getvalue().splitlines()

    rows = {r["id"]: r for r in map(json.loads, recent("--json"))}
    assert rows[first.id]["method"] == "" and rows[first.id]["story"] == first.id
    assert (rows[copy.id]["duplicate_of"], rows[copy.id]["method"]) == (first.id, "fingerprint")
    assert (rows[rewrite.id]["story"], rows[rewrite.id]["method"]) == (first.id, "story")
    assert "content=" in rows[rewrite.id]["evidence"] and rows[rewrite.id]["similarity"]
    text = "\n".join(recent())
    assert f"(same story as {first.id})" in text and f"(duplicate of {first.id})" in text
