"""robots.txt for article pages, on a loopback site: obeyed, cached, feeds exempt."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import redis

from newswire.errors import DisallowedByRobotsError, FetchError, TransientFetchError
from newswire.http import PAGE_ACCEPT, Fetcher
from newswire.model import FeedEntry
from newswire.robots import RobotsCache, robots_url
from newswire.schema import article_id
from newswire.settings import Settings
from newswire.store import decode_hash
from newswire.urls import canonicalize
from tests.conftest import Response, Site
from tests.test_worker import run_jobs

ROBOTS = b"""# newswire has a group of its own; everyone else is shut out
User-agent: *
Disallow: /

User-agent: newswire
Disallow: /private/
Allow: /private/press-releases/
"""


@pytest.fixture
def settings() -> Settings:
    """Overrides conftest's: no Redis needed."""
    return Settings(allow_private_networks=True, request_timeout=5.0)


@pytest.fixture
def fetcher(settings: Settings) -> Iterator[Fetcher]:
    with closing(Fetcher(settings)) as f:
        yield f


def page(site: Site, path: str) -> None:
    site.routes[path] = Response(200, {"Content-Type": "text/html"}, b"<p>story</p>")


def test_robots_url() -> None:
    assert robots_url("HTTPS://News.Example:8443/a/b?c#d") == "https://news.example:8443/robots.txt"


def test_pages_follow_the_rules_of_newswires_group_and_robots_txt_is_read_once(
    site: Site, fetcher: Fetcher
) -> None:
    site.routes["/robots.txt"] = Response(200, {"Content-Type": "text/plain"}, ROBOTS)
    for path in ("/news/a", "/private/b", "/private/press-releases/c"):
        page(site, path)
    assert fetcher.get(site.url("/news/a"), max_bytes=10_000, accept=PAGE_ACCEPT).status == 200
    with pytest.raises(DisallowedByRobotsError, match="disallowed by robots.txt"):
        fetcher.get(site.url("/private/b"), max_bytes=10_000)
    # The longest match wins (RFC 9309 2.2.2): the Allow under the Disallow.
    assert fetcher.get(site.url("/private/press-releases/c"), max_bytes=10_000).status == 200
    assert site.hits("/private/b") == []  # refused before any request
    assert len(site.hits("/robots.txt")) == 1  # cached for the origin


def test_a_redirect_into_a_disallowed_path_is_refused(site: Site, fetcher: Fetcher) -> None:
    site.routes["/robots.txt"] = Response(200, {}, ROBOTS)
    site.routes["/news/moved"] = Response(301, {"Location": "/private/x"})
    page(site, "/private/x")
    with pytest.raises(DisallowedByRobotsError):
        fetcher.get(site.url("/news/moved"), max_bytes=10_000)
    assert site.hits("/private/x") == []


def test_no_robots_txt_allows_everything(site: Site, fetcher: Fetcher) -> None:
    page(site, "/anything")  # /robots.txt is a 404 on this site
    assert fetcher.get(site.url("/anything"), max_bytes=10_000).status == 200
    assert len(site.hits("/robots.txt")) == 1


def test_an_unreachable_robots_txt_holds_pages_back_as_a_transient_failure(
    site: Site, fetcher: Fetcher
) -> None:
    site.routes["/robots.txt"] = Response(503)
    page(site, "/news/a")
    with pytest.raises(TransientFetchError, match="robots.txt unreachable"):
        fetcher.get(site.url("/news/a"), max_bytes=10_000)
    assert site.hits("/news/a") == []


def test_a_disallowed_page_is_a_permanent_fetch_failure() -> None:
    # The worker retries TransientFetchError and falls back to the feed's own
    # content on any other FetchError: a disallowed page must be the latter.
    assert issubclass(DisallowedByRobotsError, FetchError)
    assert not issubclass(DisallowedByRobotsError, TransientFetchError)


def test_feeds_are_fetched_without_robots_txt(site: Site, fetcher: Fetcher) -> None:
    site.routes["/robots.txt"] = Response(200, {}, b"User-agent: *\nDisallow: /\n")
    site.routes["/feed"] = Response(200, {"Content-Type": "application/rss+xml"}, b"<rss/>")
    assert fetcher.get(site.url("/feed"), max_bytes=10_000, robots=False).status == 200
    assert site.hits("/robots.txt") == []


def test_obey_robots_off(site: Site, settings: Settings) -> None:
    site.routes["/robots.txt"] = Response(200, {}, b"User-agent: *\nDisallow: /\n")
    page(site, "/p")
    with closing(Fetcher(settings.with_(obey_robots=False))) as fetcher:
        assert fetcher.get(site.url("/p"), max_bytes=10_000).status == 200
    assert site.hits("/robots.txt") == []


def test_rules_are_kept_for_a_day_and_failures_for_minutes() -> None:
    answers = [(200, b"User-agent: *\nDisallow: /x\n"), (200, b"")]
    calls: list[str] = []
    failing: set[str] = set()
    now = [0.0]

    def fetch(url: str) -> tuple[int, bytes]:
        calls.append(url)
        if url in failing:
            raise TransientFetchError("connection refused", url=url)
        return answers.pop(0) if answers else (200, b"")

    cache = RobotsCache(fetch, "newswire/0.1 (+https://example.org)", clock=lambda: now[0])
    assert cache.token == "newswire"
    with pytest.raises(DisallowedByRobotsError):
        cache.check("https://n.example/x/1")
    now[0] = 86_399.0
    with pytest.raises(DisallowedByRobotsError):
        cache.check("https://n.example/x/2")  # cached
    now[0] = 86_401.0
    cache.check("https://n.example/x/3")  # read again: no rules any more
    assert len(calls) == 2
    cache.check("https://other.example/x")  # another origin, its own read...
    assert calls[-1] == "https://other.example/robots.txt"
    now[0] += 3 * 86_400.0
    failing.add("https://n.example/robots.txt")
    with pytest.raises(TransientFetchError):
        cache.check("https://n.example/y")  # ...and an unreachable robots.txt
    failing.clear()
    now[0] += 299.0
    with pytest.raises(TransientFetchError):
        cache.check("https://n.example/y")  # the failure is remembered a while
    now[0] += 2.0
    cache.check("https://n.example/y")  # tried again after five minutes
    assert len(calls) == 5


def test_the_worker_stores_the_feeds_own_content_for_a_disallowed_page(
    site: Site, redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    settings = Settings(redis_url=redis_url, allow_private_networks=True,
                        feeds_path=tmp_path / "feeds.toml", request_timeout=5.0)
    site.routes["/robots.txt"] = Response(200, {}, b"User-agent: *\nDisallow: /private/\n")
    page(site, "/private/story")
    url = site.url("/private/story")
    entry = FeedEntry(
        feed="f", link=url, canonical_url=canonicalize(url), guid="g1", title="A story",
        summary="<p>The whole story, as the feed tells it, in one paragraph of text.</p>",
    )
    run_jobs(settings, client, (entry,))
    article = decode_hash(client.hgetall(f"news:article:{article_id(entry.canonical_url)}"))
    assert article["source"] == "feed"
    assert article["fetch_error"] == f"{url}: disallowed by robots.txt"
    assert "The whole story" in article["text"]
    assert site.hits("/private/story") == [] and len(site.hits("/robots.txt")) == 1
