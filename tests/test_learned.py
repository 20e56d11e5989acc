"""Boilerplate learned from the site itself: a second site, no profile, an appeal and a
standing notice that no generic rule names. The worker stores the site's pages one
after the other (a real RQ worker, the test Redis, a loopback site); once the site has
been seen on ``NEWSWIRE_BOILERPLATE_MIN_PAGES`` pages, its recurring paragraphs are
gone from every page stored after, and the body stays whole.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

import newswire.store
from newswire.cli import extract_source
from newswire.fingerprint import fingerprint
from newswire.http import Fetcher
from newswire.model import ArticleRecord, CleanedArticle, CommitResult, iso
from newswire.schema import Keys, article_id
from newswire.settings import Settings
from newswire.siteblocks import block_id
from newswire.store import Store
from newswire.urls import site_of
from scheduler.service import Scheduler

from .conftest import Site

# The worker tests' fixtures, shared rather than written twice.
from .test_worker import html, make_entry, runtime, sched, stored, work  # noqa: F401

#: What every page of the Harbour Ledger carries inside its article container. No cue
#: word of the generic rules (donate, support, newsletter, subscribe...) is in it.
SITE_BLOCKS = [
    "The Harbour Ledger is written and edited in Port Ellen by a staff of nine, and "
    "every story we publish is read by two of them before it goes out to the islands.",
    "Tell us what is happening on your street: the Ledger's tip line is open from eight "
    "in the morning until late, and the night editor reads every message that arrives.",
]
STORIES = [
    ["The island's only ferry will run a second daily crossing from June, the operator "
     "said on Monday, after a summer in which hundreds of travellers were turned away.",
     "Engineers finished repairs to the vessel's starboard engine last week, and the "
     "harbour master said the new timetable had been approved by the coastguard."],
    ["A storm that crossed the north of the island on Saturday night brought down power "
     "lines in three villages and left about four hundred homes without electricity.",
     "Crews from the mainland arrived on the first ferry and expected to reconnect the "
     "last houses by Tuesday, although farms on the hill road could wait longer."],
    ["The distillery on the west shore has applied to double the size of its warehouse, "
     "a plan that neighbours say will bring lorries through the village day and night.",
     "The council's planning committee will visit the site in March; a decision is not "
     "expected before the summer, and objections can be lodged until the end of April."],
    ["Pupils at the primary school in Bowmore raised enough money at their winter fair "
     "to buy a new set of instruments for the music room, the head teacher said.",
     "The old drums and guitars, some of them thirty years old, will go to the youth "
     "club in the community hall, which has asked for them since the autumn."],
    ["The lifeboat crew was called out twice on Sunday, first to a yacht with a fouled "
     "propeller off the lighthouse and then to a walker injured on the cliff path.",
     "Both calls ended well: the yacht was towed into the harbour before dark, and the "
     "walker was taken to hospital on the mainland with a broken ankle."],
]


def ledger_page(story: list[str]) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in [story[0], story[1], *SITE_BLOCKS])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta property="og:site_name" content="The Harbour Ledger">'
        f"<title>{story[0][:40]}</title></head><body><nav><a href='/'>Home</a></nav>"
        f"<article><h1>{story[0][:40]}</h1>{body}</article></body></html>"
    ).encode()


@pytest.mark.usefixtures("runtime")
def test_an_appeal_no_rule_names_is_learned_after_a_few_pages_of_the_site(
    site: Site, sched: Scheduler, client: redis.Redis, settings: Settings  # noqa: F811
) -> None:
    min_pages = settings.boilerplate_min_pages
    assert min_pages < len(STORIES)
    texts = []
    for n, story in enumerate(STORIES):
        path = f"/ledger/story-{n}"
        site.routes[path] = html(ledger_page(story))
        entry = make_entry(site, path, title=f"Story {n}")
        assert sched.enqueue((entry,)) == 1
        work(sched, client)  # one page after the other, as a site publishes them
        texts.append(stored(client, entry)["text"].split("\n"))

    for n, (text, story) in enumerate(zip(texts, STORIES, strict=True)):
        if n < min_pages:
            # What it can't catch: the first pages of a site keep what recurs.
            assert text == [*story, *SITE_BLOCKS]
        else:
            assert text == story

    # `newswire extract --learned` shows the page as the worker would store it now,
    # and changes nothing in Redis.
    key = Keys(settings.prefix).site(site_of(site.base))
    before = client.hgetall(key)
    assert int(before[b"pages"]) == len(STORIES)
    fetcher = Fetcher(settings)
    try:
        result = extract_source(site.url("/ledger/story-0"), lambda: fetcher, settings,
                                Store(client, settings))
    finally:
        fetcher.close()
    assert result["text"].split("\n") == STORIES[0]
    assert result["learned_removed"] == len(SITE_BLOCKS)
    assert client.hgetall(key) == before


# -- The learned boilerplate a worker remembers, checked by the commit script ----------

BODY = ["The ferry will run a second daily crossing from June, the operator said.",
        "Engineers finished repairs to the starboard engine of the vessel last week."]
NOW = datetime(2025, 2, 20, 12, 0, tzinfo=UTC)
LEDGER = "ledger.example"


class Maker:
    """Records of pages of one site as the worker makes them (the learned boilerplate
    as the store remembers it), counting how often the commit had one made again."""

    def __init__(self, store: Store) -> None:
        self.store, self.rebuilt = store, 0

    def commit(self, url: str, paragraphs: list[str]) -> CommitResult:
        page = CleanedArticle(title="Ferry", paragraphs=tuple(paragraphs), site=LEDGER)

        def made() -> ArticleRecord:
            article, blocks, taken = self.store.without_learned(page, remembered=True)
            return ArticleRecord(
                id=article_id(url), url=url, canonical_url=url, feed="ledger", title="Ferry",
                text=article.text, published="2025-02-20T11:05:00Z", fetched=iso(NOW),
                fingerprint=fingerprint(article.text), site=LEDGER, blocks=blocks,
                learned_blocks=taken,
                learned_removed=len(page.paragraphs) - len(article.paragraphs))

        def again() -> ArticleRecord:
            self.rebuilt += 1
            return made()

        return self.store.commit(made(), NOW, rebuild=again)


def counted(client: redis.Redis, settings: Settings, counts: dict[str, int]) -> str:
    """Give the site's learned-blocks hash these paragraph counts; its key."""
    key = Keys(settings.prefix).site(LEDGER)
    client.delete(key)
    client.hset(key, mapping={block_id(p): n for p, n in counts.items()})
    return key


def test_a_worker_learns_the_sites_boilerplate_from_the_commit_and_remembers_it(
    client: redis.Redis, settings: Settings
) -> None:
    store = Store(client, settings)
    key = counted(client, settings, {SITE_BLOCKS[0]: settings.boilerplate_min_pages})
    maker = Maker(store)

    first = maker.commit("https://ledger.example/1", [*BODY, SITE_BLOCKS[0]])
    # The store knew nothing of the site: the script said which block is learned,
    # and wrote nothing until the record was made again without it.
    assert first.type == "new" and maker.rebuilt == 1
    assert store.article(first.id)["text"].split("\n") == BODY
    assert store.article(first.id)["learned_removed"] == "1"
    assert int(client.hget(key, block_id(SITE_BLOCKS[0])) or 0) == \
        settings.boilerplate_min_pages + 1  # counted once, not once per call
    assert int(client.hget(key, "pages") or 0) == 1

    second = maker.commit("https://ledger.example/2", [STORIES[1][0], SITE_BLOCKS[0]])
    # Remembered: no second call.
    assert maker.rebuilt == 1
    assert store.article(second.id)["text"] == STORIES[1][0]


def test_a_remembered_block_the_counts_no_longer_make_boilerplate_is_kept(
    client: redis.Redis, settings: Settings
) -> None:
    store = Store(client, settings)
    counted(client, settings, {SITE_BLOCKS[0]: settings.boilerplate_min_pages})
    maker = Maker(store)
    maker.commit("https://ledger.example/1", [*BODY, SITE_BLOCKS[0]])
    assert maker.rebuilt == 1

    # The site's counts were halved to make room (or expired): the block is a page's
    # own paragraph again, whatever this store remembers.
    counted(client, settings, {SITE_BLOCKS[0]: 1})
    later = maker.commit("https://ledger.example/2", [STORIES[1][0], SITE_BLOCKS[0]])
    assert maker.rebuilt == 2
    assert store.article(later.id)["text"].split("\n") == [STORIES[1][0], SITE_BLOCKS[0]]
    maker.commit("https://ledger.example/3", [STORIES[2][0], SITE_BLOCKS[0]])
    assert maker.rebuilt == 2  # and it remembers that too


def test_the_check_reads_the_counts_of_a_page_with_thousands_of_paragraphs(
    client: redis.Redis, settings: Settings
) -> None:
    # The script reads the counts a thousand blocks at a time (Lua's unpack has a limit),
    # in the order of their ids: the learned one is in the last thousand.
    paragraphs = [f"Paragraph number {n} of a very long page." for n in range(2500)]
    learned = max(paragraphs, key=block_id)
    counted(client, settings, {learned: settings.boilerplate_min_pages})
    maker = Maker(Store(client, settings))
    result = maker.commit("https://ledger.example/long", paragraphs)
    assert maker.rebuilt == 1
    assert Store(client, settings).article(result.id)["text"].split("\n") == \
        [p for p in paragraphs if p != learned]


def test_what_a_store_remembers_is_bounded_and_forgetting_costs_only_a_call(
    client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(newswire.store, "LEARNED_BLOCKS_MAX", 2)
    store = Store(client, settings)
    counted(client, settings, {SITE_BLOCKS[0]: settings.boilerplate_min_pages,
                               SITE_BLOCKS[1]: settings.boilerplate_min_pages})
    maker = Maker(store)
    first = maker.commit("https://ledger.example/1", [*BODY, *SITE_BLOCKS])
    assert maker.rebuilt == 1 and store.article(first.id)["text"].split("\n") == BODY
    assert store._learned_count == 2

    # Another site's boilerplate pushes the ledger's out of memory...
    other_key = Keys(settings.prefix).site("other.example")
    client.hset(other_key, block_id(STORIES[4][1]), settings.boilerplate_min_pages)
    page = CleanedArticle(title="Lifeboat", paragraphs=(STORIES[4][0], STORIES[4][1]),
                          site="other.example")

    def made() -> ArticleRecord:
        article, blocks, taken = store.without_learned(page, remembered=True)
        return ArticleRecord(
            id=article_id("https://other.example/1"), url="https://other.example/1",
            canonical_url="https://other.example/1", feed="other", title="Lifeboat",
            text=article.text, published="2025-02-20T11:05:00Z", fetched=iso(NOW),
            fingerprint=fingerprint(article.text), site="other.example", blocks=blocks,
            learned_blocks=taken)

    assert store.commit(made(), NOW, rebuild=made).type == "new"
    assert store._learned_count <= 2 and LEDGER not in store._learned

    # ...and the ledger's next page is still stored without it, at the cost of a call.
    later = maker.commit("https://ledger.example/2", [STORIES[1][0], *SITE_BLOCKS])
    assert maker.rebuilt == 2
    assert store.article(later.id)["text"] == STORIES[1][0]
    assert store._learned_count <= 2
