"""Boilerplate learned from the site itself: a second site, no profile, an appeal and a
standing notice that no generic rule names. The worker stores the site's pages one
after the other (a real RQ worker, the test Redis, a loopback site); once the site has
been seen on ``NEWSWIRE_BOILERPLATE_MIN_PAGES`` pages, its recurring paragraphs are
gone from every page stored after, and the body stays whole.
"""

from __future__ import annotations

import pytest
import redis

from newswire.cli import extract_source
from newswire.http import Fetcher
from newswire.schema import Keys
from newswire.settings import Settings
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
