"""Feeds file validation and feed parsing on the fixture feeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from newswire.clean import paragraphs_from_html
from newswire.errors import ConfigError, ParseError
from newswire.feeds import load_feeds_file, parse_feed
from newswire.settings import shipped_feeds_file

from .conftest import DATA

BASE = "http://127.0.0.1:8000"


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes().replace(b"{{BASE}}", BASE.encode())


def test_shipped_feeds_file() -> None:
    feeds = load_feeds_file(shipped_feeds_file())
    assert [(f.name, f.url) for f in feeds] == [
        ("moscowtimes", "https://www.themoscowtimes.com/rss/news"),
        ("thejournal", "https://www.thejournal.ie/feed/"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[feeds]]\nname = 'a'\n", "'url' is missing"),
        ("[[feeds]]\nname = 'a b'\nurl = 'https://x.example/'\n", "'name' must be"),
        ("[[feeds]]\nname = 'a'\nurl = 'ftp://x.example/'\n", "not an http(s) URL"),
        ("[[feeds]]\nname = 'a'\nurl = 'https://x.example/'\ninterval = -5\n", "'interval'"),
        ("[[feeds]]\nname = 'a'\nurl = 'https://x.example/'\nintervall = 5\n", "unknown keys"),
        ("[[feeds]]\nname='a'\nurl='https://x.example/'\n[[feeds]]\nname='a'\nurl='https://y.example/'\n",
         "used twice"),
        ("[[feeds]\n", "not valid TOML"),
        ("feeds = 3\n", "array of tables"),
    ],
)
def test_bad_feeds_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="feeds file") as error:
        load_feeds_file(path)
    assert message in str(error.value)


def test_missing_feeds_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read feeds file"):
        load_feeds_file(tmp_path / "nope.toml")


def test_rss_with_ttl_tabs_and_offsets() -> None:
    parsed = parse_feed(fixture("feeds/moscowtimes.rss"), feed="mt", url=BASE + "/rss")
    assert parsed.ttl_minutes == 10
    assert len(parsed.entries) == 3
    first = parsed.entries[0]
    assert first.link == first.guid == BASE + "/mt/news/2025/02/20/leaders-agree-new-talks-a1001"
    assert first.published == "2025-02-20T11:05:00Z"  # +0300 normalized to UTC
    assert first.title == " ".join(first.title.split())
    assert first.summary and "\t" not in first.summary.strip()[:1]


def test_utm_section_feed_canonicalizes_to_the_same_article() -> None:
    main = parse_feed(fixture("feeds/moscowtimes.rss"), feed="mt", url=BASE)
    section = parse_feed(fixture("feeds/moscowtimes-politics.rss"), feed="mtp", url=BASE)
    (tracked,) = [e for e in section.entries if "utm_source" in e.link]
    assert tracked.canonical_url == main.entries[0].canonical_url


def test_windows_1251_feed() -> None:
    parsed = parse_feed(fixture("feeds/legacy-1251.rss"), feed="ru", url=BASE,
                        content_type="text/xml")
    assert len(parsed.entries) == 2
    assert any("\u0400" <= ch <= "\u04ff" for ch in parsed.entries[0].title)
    assert parsed.entries[0].canonical_url.endswith("leaders-agree-new-talks-a1001")


def test_wordpress_content_encoded_and_authors() -> None:
    parsed = parse_feed(fixture("feeds/thejournal.rss"), feed="tj", url=BASE)
    entry = parsed.entries[1]
    assert "<p>" in entry.content
    assert entry.authors


def test_atom_from_an_aggregator() -> None:
    parsed = parse_feed(fixture("feeds/aggregator.atom"), feed="agg", url=BASE,
                        content_type="application/atom+xml")
    assert len(parsed.entries) == 2
    for entry in parsed.entries:
        assert entry.guid.startswith("tag:") and entry.link.startswith(BASE + "/")
        assert entry.published.endswith("Z") and entry.authors
    assert {e.canonical_url for e in parsed.entries} == {
        BASE + "/agg/2025/02/20/leaders-agree-new-talks", BASE + "/rw/summit-rewrite"}


@pytest.mark.parametrize(
    "body", [fixture("feeds/malformed.xml"), b"<html><body>Not a feed</body></html>",
             b"\x00\x01\x02\xff" * 100, b""],
)
def test_what_is_not_a_feed_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_feed(body, feed="x", url=BASE)


def test_entries_with_unusable_links_are_skipped_with_a_reason() -> None:
    body = (b"<rss version='2.0'><channel><title>t</title>"
            b"<item><title>ok</title><link>https://x.example/a</link></item>"
            b"<item><title>bad</title><link>javascript:alert(1)</link></item>"
            b"<item><title>none</title></item></channel></rss>")
    parsed = parse_feed(body, feed="x", url=BASE)
    assert [e.title for e in parsed.entries] == ["ok"]
    assert len(parsed.skipped) == 2 and "javascript" in parsed.skipped[0]


def test_relative_entry_links_resolve_and_content_keeps_its_text() -> None:
    """Entry links are resolved against the feed's URL; relative links inside an
    entry's HTML are left as they are (only its text is kept)."""
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<link>/</link><item><title>One</title><link>/news/1?utm_source=x</link>"
        b"<description>&lt;p&gt;Read &lt;a href=&quot;/more&quot;&gt;more&lt;/a&gt; here."
        b"&lt;/p&gt;</description></item></channel></rss>"
    )
    (entry,) = parse_feed(body, feed="f", url=BASE + "/feed.xml").entries
    assert entry.link == BASE + "/news/1?utm_source=x"
    assert entry.canonical_url == BASE + "/news/1"
    assert paragraphs_from_html(entry.summary) == ("Read more here.",)
