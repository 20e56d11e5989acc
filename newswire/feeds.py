"""The feeds file and feed documents: TOML and RSS/Atom bytes in, plain data out.

Parsing is feedparser's (RSS 0.9x, 1.0, 2.0, Atom 0.3/1.0; encodings from the
HTTP header, the XML declaration or a BOM); this module only turns its result
into :class:`FeedEntry` values and decides what is not an entry.
"""

from __future__ import annotations

import calendar
import logging
import pyexpat
import re
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
from feedparser.encodings import convert_to_utf8
from feedparser.sanitizer import replace_doctype

from .errors import ConfigError, NewswireError, ParseError
from .model import MAX_TITLE, FeedConfig, FeedEntry, ParsedFeed, iso
from .urls import InvalidURL, canonicalize

log = logging.getLogger("newswire.feeds")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_TITLE = MAX_TITLE
_MAX_TEXT = 200_000
#: Reasons kept for skipped entries (the rest are counted in one line).
_MAX_REASONS = 20
#: C0 controls but tab, newline and carriage return; DEL; lone surrogates (which
#: cannot be encoded as UTF-8, so Redis would refuse them); U+FFFE and U+FFFF.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
# feedparser flags these, but the document itself is fine: a missing or non-XML
# Content-Type header, or a header charset that the XML declaration overrides.
_BENIGN = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)


def load_feeds_file(path: Path) -> list[FeedConfig]:
    """Read and validate a feeds file (see README, "Feeds file")."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read feeds file {path}: {e.strerror or e}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"feeds file {path} is not valid TOML: {e}") from e
    tables = data.get("feeds", [])
    if not isinstance(tables, list):
        raise ConfigError(f"feeds file {path}: 'feeds' must be an array of tables ([[feeds]])")
    feeds: list[FeedConfig] = []
    seen: set[str] = set()
    for number, table in enumerate(tables, 1):
        where = f"feeds file {path}, feed #{number}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        name, url, interval = table.get("name"), table.get("url"), table.get("interval")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"{where}: 'name' must be 1-64 letters, digits, '.', '_' or '-', got {name!r}"
            )
        if name in seen:
            raise ConfigError(f"{where}: the name {name!r} is used twice")
        seen.add(name)
        if not isinstance(url, str):
            raise ConfigError(f"{where} ({name}): 'url' is missing")
        try:
            canonicalize(url)
        except InvalidURL as e:
            raise ConfigError(f"{where} ({name}): {e}") from None
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0
        ):
            raise ConfigError(f"{where} ({name}): 'interval' must be a positive number of seconds")
        unknown = set(table) - {"name", "url", "interval"}
        if unknown:
            raise ConfigError(f"{where} ({name}): unknown keys {', '.join(sorted(unknown))}")
        feeds.append(FeedConfig(name=name, url=url.strip(), interval=interval))
    return feeds


class FeedsFile:
    """The feeds file, re-read when it changes on disk (no restart needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._feeds: list[FeedConfig] = []

    def load(self) -> list[FeedConfig]:
        try:
            stat = self.path.stat()
        except OSError:
            stamp = None
        else:
            # Nanoseconds, size and inode: an edit within the same second, or a new
            # file renamed over the old one (editors, `newswire feeds import`), shows.
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp is None or stamp != self._stamp:
            try:
                feeds = load_feeds_file(self.path)
            except NewswireError:
                if self._stamp is None:
                    raise
                # A half-saved edit must not stop polling: keep the last good list.
                log.exception("feeds file %s unreadable, keeping the last good list", self.path)
                return self._feeds
            self._feeds, self._stamp = feeds, stamp
        return self._feeds


def _utc(struct: time.struct_time | None) -> str:
    # feedparser normalizes every date it understands to a UTC struct_time.
    if not struct:
        return ""
    try:
        return iso(datetime.fromtimestamp(calendar.timegm(struct), UTC))
    except (OverflowError, ValueError, OSError):
        return ""


def _clip(value: Any, limit: int) -> str:
    """``value`` as storable text: no NULs, controls or lone surrogates, at most
    ``limit`` characters (cut before cleaning too, so a 1 MB title costs little)."""
    text = value if isinstance(value, str) else ""
    return _UNSTORABLE.sub("", text[: limit * 2]).strip()[:limit]


_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


def _neutralise_bad_charrefs(body: bytes) -> bytes:
    """Character references to a lone surrogate or past U+10FFFF become U+FFFD.

    XML forbids them, so expat refuses the document, and feedparser's fallback
    parser then crashes on them (``chr()`` of a surrogate cannot be encoded):
    one bad reference would lose the whole feed.
    """
    if b"&#" not in body:
        return body

    def fix(match: re.Match[bytes]) -> bytes:
        value = int(match[1], 16) if match[1] else int(match[2])
        return b"&#xFFFD;" if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF else match[0]

    return _CHARREF.sub(fix, body)


class _RootReached(Exception):
    pass


class _EntityDeclared(Exception):
    pass


def _refuse_entity_declarations(body: bytes, headers: dict[str, str]) -> None:
    """Raise :class:`ParseError` if the document declares any XML entity.

    Entities are how a feed expands a few kilobytes into gigabytes ("billion
    laughs", or one large entity repeated: the quadratic blowup) or reads a
    local file or a URL (external entities, XXE). Real feeds declare none, so
    any declaration refuses the feed, before feedparser sees it (as defusedxml
    does). The check reads what feedparser's parser would read (the document
    converted to UTF-8 by feedparser itself) with expat, up to the root element
    only: declarations can only come before it. feedparser's fallback parser
    for ill-formed XML expands the entities its own regex finds, so those are
    refused as well.
    """

    def entity(name: str, *_: object) -> None:
        raise _EntityDeclared(name)

    def root(*_: object) -> None:
        raise _RootReached

    data = convert_to_utf8(dict(headers), body, {})
    parser = pyexpat.ParserCreate()
    parser.EntityDeclHandler = entity
    parser.StartElementHandler = root
    declared = ""
    try:
        parser.Parse(data, True)
    except _EntityDeclared as e:
        declared = str(e)
    except _RootReached:
        pass
    except pyexpat.ExpatError:
        # Ill-formed before its root element: what is declared cannot be told apart.
        if b"<!ENTITY" in data:
            declared = "?"
    if not declared:
        declared = ", ".join(replace_doctype(data)[2])
    if declared:
        raise ParseError(
            f"refused: the feed declares XML entities ({declared}); entity expansion "
            "and external entities are not allowed"
        )


def _entry_link(entry: Any) -> str:
    link = entry.get("link") or ""
    if not link:
        for candidate in entry.get("links", []):
            if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
                return str(candidate["href"])
        guid = entry.get("id") or ""
        if entry.get("guidislink") or guid.startswith(("http://", "https://")):
            return str(guid)
    return str(link)


def _content(entry: Any) -> str:
    for item in entry.get("content", []):
        if item.get("value"):
            return _clip(item["value"], _MAX_TEXT)
    return ""


def parse_feed(body: bytes, *, feed: str, url: str, content_type: str = "") -> ParsedFeed:
    """Parse a fetched feed document into entries.

    Entries without an http(s) link are skipped with a reason (the first
    ``_MAX_REASONS``, then a count). A document with no entries that feedparser
    could not read at all, or one that declares XML entities, raises
    :class:`ParseError`.
    """
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    _refuse_entity_declarations(body, headers)
    body = _neutralise_bad_charrefs(body)
    try:
        # resolve_relative_uris=False: feedparser would run every HTML summary and
        # content through its own HTML parser to rewrite relative href/src values, a
        # third of its time on a small feed; newswire keeps only their text
        # (clean.paragraphs_from_html). Entry links are resolved either way.
        parsed = feedparser.parse(
            body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
        )
    except Exception as e:  # feedparser's fallback parser can raise about anything,
        # e.g. UnicodeEncodeError on a lone surrogate's character reference (&#55296;).
        raise ParseError(f"unreadable feed: {type(e).__name__}: {e}") from e
    problem = ""
    exc = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(exc, _BENIGN):
        problem = f"{type(exc).__name__}: {exc}" if exc else "ill-formed feed"
    if not parsed.entries and (problem or not parsed.get("version")):
        kind = "not an RSS or Atom feed" if not parsed.get("version") else "malformed feed"
        raise ParseError(f"{kind}: {problem}" if problem else kind)

    entries: list[FeedEntry] = []
    skipped: list[str] = []
    unlinked = 0
    for raw in parsed.entries:
        link = _UNSTORABLE.sub("", _entry_link(raw)).strip()
        try:
            canonical = canonicalize(link)
        except InvalidURL as e:
            unlinked += 1
            if len(skipped) < _MAX_REASONS:
                skipped.append(f"entry {_clip(raw.get('title'), 80)!r}: {e}")
            continue
        entries.append(
            FeedEntry(
                feed=feed,
                link=link,
                canonical_url=canonical,
                guid=_clip(raw.get("id"), 2000) or link,
                title=" ".join(_clip(raw.get("title"), _MAX_TITLE).split()),
                published=_utc(raw.get("published_parsed") or raw.get("updated_parsed")),
                summary=_clip(raw.get("summary"), _MAX_TEXT),
                content=_content(raw),
                authors=tuple(
                    _clip(a.get("name"), 200) for a in raw.get("authors", []) if a.get("name")
                ),
            )
        )
    if unlinked > len(skipped):
        skipped.append(f"{unlinked - len(skipped)} more entries without a usable link")
    if problem and not entries:
        raise ParseError(f"malformed feed: {problem}")
    ttl = None
    raw_ttl = str(parsed.feed.get("ttl", "")).strip()
    if raw_ttl.isdigit():
        ttl = int(raw_ttl)
    return ParsedFeed(
        title=_clip(parsed.feed.get("title"), _MAX_TITLE),
        entries=tuple(entries),
        ttl_minutes=ttl,
        skipped=tuple(skipped),
        recovered_error=problem if entries else "",
    )
