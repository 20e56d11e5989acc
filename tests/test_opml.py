"""OPML import and export: the pure functions, then the real ``newswire feeds`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newswire.cli import _import_target
from newswire.errors import ConfigError
from newswire.feeds import load_feeds_file
from newswire.model import FeedConfig
from newswire.opml import feed_name, parse_opml, plan_import, to_opml, toml_entries
from newswire.settings import Settings, shipped_feeds_file

from .conftest import Runner, write_feeds

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Subscriptions</title></head>
  <body>
    <outline text="News" title="News">
      <outline type="rss" text="The Wire" title="The Wire" xmlUrl="https://wire.example/rss"
               htmlUrl="https://wire.example/"/>
      <outline type="rss" text="Le Monde — International" xmlUrl="https://lemonde.example/intl.xml"/>
      <outline type="rss" text="The Wire" xmlUrl="https://wire.example/rss/world"/>
    </outline>
    <outline type="rss" text="" xmlUrl="https://blog.example/feed/"/>
    <outline type="rss" text="Again" xmlUrl="HTTPS://WIRE.example/rss#top"/>
    <outline type="rss" text="Mail" xmlUrl="mailto:someone@example.com"/>
    <outline text="Not a feed" htmlUrl="https://site.example/"/>
  </body>
</opml>
""".encode()


def test_parse_opml_reads_nested_outlines_in_order() -> None:
    feeds = parse_opml(OPML)
    assert [(f.title, f.url, f.folder) for f in feeds] == [
        ("The Wire", "https://wire.example/rss", "News"),
        ("Le Monde — International", "https://lemonde.example/intl.xml", "News"),
        ("The Wire", "https://wire.example/rss/world", "News"),
        ("", "https://blog.example/feed/", ""),
        ("Again", "HTTPS://WIRE.example/rss#top", ""),
        ("Mail", "mailto:someone@example.com", ""),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<opml><body>", "not valid XML"),
        (b"<rss><channel/></rss>", "not OPML"),
        (b'<!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body/></opml>', "entities"),
    ],
)
def test_what_is_not_opml_is_one_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_opml(data, source="subs.opml")


def test_plan_import_names_feeds_and_skips_known_urls() -> None:
    existing = [FeedConfig("the-wire", "https://Wire.example:443/rss/world")]
    added, skipped = plan_import(existing, parse_opml(OPML))
    assert added == [
        FeedConfig("the-wire-2", "https://wire.example/rss"),
        FeedConfig("le-monde-international", "https://lemonde.example/intl.xml"),
        FeedConfig("blog.example", "https://blog.example/feed/"),
    ]
    assert len(skipped) == 3
    assert "already in the feeds file" in skipped[0]  # /rss/world, by canonical URL
    assert "already in the feeds file" in skipped[1]  # the same feed spelled otherwise
    assert skipped[2].startswith("Mail: ")


def test_feed_name() -> None:
    assert feed_name("  Ça va? Süddeutsche / Politik ") == "ca-va-suddeutsche-politik"
    assert feed_name("日本語") == ""
    assert len(feed_name("x" * 200)) <= 64


def test_toml_entries_read_back_as_a_feeds_file(tmp_path: Path) -> None:
    feeds = [FeedConfig("a", 'https://a.example/feed?q="x"&y=\\z'),
             FeedConfig("b", "https://b.example/", 600)]
    path = tmp_path / "feeds.toml"
    path.write_text(toml_entries(feeds))
    assert load_feeds_file(path) == feeds


def test_export_is_opml_that_imports_back() -> None:
    pairs = [("a", "https://a.example/feed?x=1&y=2"), ("b", "https://b.example/<rss>")]
    feeds = parse_opml(to_opml(pairs))
    assert [(f.title, f.url) for f in feeds] == pairs


def test_an_import_never_writes_the_shipped_file(tmp_path: Path) -> None:
    target, text = _import_target(Settings(feeds_path=shipped_feeds_file()), tmp_path)
    assert target == tmp_path / "feeds.toml"
    assert text == shipped_feeds_file().read_text()


# -- the real commands ---------------------------------------------------------


def test_feeds_import_then_export(run: Runner, tmp_path: Path) -> None:
    feeds_path = write_feeds(tmp_path / "feeds.toml",
                             {"the-wire": "https://wire.example/rss/world"})
    feeds_path.write_text("# my feeds\n" + feeds_path.read_text())
    (tmp_path / "subs.opml").write_bytes(OPML)

    dry = run.newswire("feeds", "import", "--dry-run", "subs.opml")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"would add 3 feeds to {feeds_path}")
    assert len(load_feeds_file(feeds_path)) == 1

    result = run.newswire("feeds", "import", "subs.opml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"added 3 feeds to {feeds_path}, skipped 3")
    assert result.stderr.count("newswire: skipped") == 3
    assert feeds_path.read_text().startswith("# my feeds\n")  # the user's text is kept
    names = [f.name for f in load_feeds_file(feeds_path)]
    assert names == ["the-wire", "the-wire-2", "le-monde-international", "blog.example"]

    again = run.newswire("feeds", "import", "subs.opml")
    assert again.stdout.startswith("added 0 feeds") and len(load_feeds_file(feeds_path)) == 4

    listed = run.newswire("feeds", "--json")
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == names

    exported = run.newswire("feeds", "export")
    assert exported.returncode == 0, exported.stderr
    assert [(f.title, f.url) for f in parse_opml(exported.stdout.encode())] == [
        (f.name, f.url) for f in load_feeds_file(feeds_path)]


def test_feeds_import_of_a_bad_file_is_one_line(run: Runner, tmp_path: Path) -> None:
    (tmp_path / "bad.opml").write_text("<html><body>nope</body></html>")
    result = run.newswire("feeds", "import", "bad.opml")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "newswire: error: bad.opml is not OPML (no <opml><body>)"]
    missing = run.newswire("feeds", "import", "nope.opml")
    assert missing.returncode == 1 and "cannot read nope.opml" in missing.stderr
