"""Domain types, named by where they stand in the flow.

``FeedConfig`` (configured) → ``FetchedResponse`` (fetched) → ``ParsedFeed``
with ``FeedEntry`` items (parsed) → job payload → ``CleanedArticle``
(cleaned) → ``ArticleRecord`` (ready to store) → ``CommitResult`` (stored).
All are frozen dataclasses of plain data: no I/O lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def iso(dt: datetime | None) -> str:
    """ISO 8601 in UTC with a ``Z``, seconds precision ('' for None)."""
    if dt is None:
        return ""
    return dt.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(value: str | None) -> datetime | None:
    """Inverse of :func:`iso`; accepts any ISO 8601 form Python reads, naive means UTC."""
    if not value:
        return None
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class FeedConfig:
    """One ``[[feeds]]`` table of the feeds file."""

    name: str
    url: str
    interval: int | None = None


@dataclass(frozen=True)
class FetchedResponse:
    """An HTTP response read within the limits, after any redirects."""

    url: str  # the URL that answered, after redirects
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes
    #: Where the leading run of permanent redirects (301/308) led, else None: the
    #: resource's new address (RFC 9110 15.4.2), even if that one redirects on temporarily.
    permanent_url: str | None = None
    elapsed: float = 0.0

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass(frozen=True)
class FeedEntry:
    """An item of a feed, as the feed described it."""

    feed: str
    link: str  # as linked from the feed
    canonical_url: str
    guid: str
    title: str = ""
    published: str = ""  # ISO 8601 UTC, '' when the feed gave none
    summary: str = ""
    content: str = ""  # content:encoded / atom content, HTML
    authors: tuple[str, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        """A JSON-ready dict: the RQ job argument. (Its fields are strings and a tuple of
        strings: ``asdict``'s deep copy of each would cost more than the rest of an
        entry's enqueueing.)"""
        data = dict(vars(self))
        data["authors"] = list(self.authors)
        return data

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> FeedEntry:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["authors"] = tuple(known.get("authors") or ())
        return cls(**known)


@dataclass(frozen=True)
class ParsedFeed:
    """A feed document turned into entries."""

    title: str
    entries: tuple[FeedEntry, ...]
    #: RSS <ttl> in minutes, if the feed sent one.
    ttl_minutes: int | None = None
    #: Entries left out, each with its reason (no link, non-HTTP link ...).
    skipped: tuple[str, ...] = ()
    #: feedparser found the XML ill-formed but still recovered entries.
    recovered_error: str = ""

#: Characters kept of an article's title, from its feed or its page (README,
#: "Hostile input"): a hostile 1 MB title would otherwise travel through RQ,
#: the article hash, the stream and every subscriber.
MAX_TITLE = 1000


@dataclass(frozen=True)
class CleanedArticle:
    """What the cleaner made of a page (or of the feed's own content)."""

    title: str
    paragraphs: tuple[str, ...]
    authors: tuple[str, ...] = ()
    published: str = ""  # ISO 8601 UTC or ''
    language: str = ""
    image: str = ""
    canonical_url: str = ""
    source: str = "page"  # "page", or "feed" when the feed's content stood in
    #: The page's site (registered domain) and the site profile that cleaned it.
    site: str = ""
    profile: str = ""

    @property
    def text(self) -> str:
        return "\n".join(self.paragraphs)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "text": self.text,
            "published": self.published or None,
            "authors": list(self.authors),
            "language": self.language or None,
            "image": self.image or None,
            "canonical_url": self.canonical_url or None,
            "source": self.source,
            "site": self.site or None,
            "profile": self.profile or None,
        }


@dataclass(frozen=True)
class ArticleRecord:
    """An article ready to be committed: the fields of ``news:article:<id>``."""

    id: str
    url: str
    canonical_url: str
    feed: str
    title: str
    text: str
    published: str
    fetched: str
    fingerprint: str
    guid: str = ""
    authors: tuple[str, ...] = ()
    language: str = ""
    image: str = ""
    source: str = "page"
    fetch_error: str = ""
    page_canonical_url: str = ""
    #: The page's site, the site profile that cleaned it, and the ids of its
    #: paragraphs as extracted (before learned boilerplate went), for the site's counts.
    site: str = ""
    profile: str = ""
    blocks: tuple[str, ...] = ()
    #: The ids among ``blocks`` taken as the site's learned boilerplate, and how many
    #: paragraphs went with them.
    learned_blocks: tuple[str, ...] = ()
    learned_removed: int = 0

    def fields(self) -> dict[str, str]:
        """Hash fields as strings; ``story``/``duplicate_of`` are decided in Redis."""
        return {
            "id": self.id,
            "url": self.url,
            "canonical_url": self.canonical_url,
            "feed": self.feed,
            "title": self.title,
            "text": self.text,
            "published": self.published,
            "fetched": self.fetched,
            "fingerprint": self.fingerprint,
            "guid": self.guid,
            "authors": ", ".join(self.authors),
            "language": self.language,
            "image": self.image,
            "source": self.source,
            "fetch_error": self.fetch_error,
            "site": self.site,
            "profile": self.profile,
            "learned_removed": str(self.learned_removed),
        }


@dataclass(frozen=True)
class CommitResult:
    """What the commit script decided."""

    type: str  # "new", "duplicate", or "exists" when this URL was stored before
    id: str
    story: str
    duplicate_of: str
    #: How the match was found: "" (new), "url", "canonical_url", "fingerprint" (the
    #: same normalized text), "minhash" (the same article, edited), "story" (a rewrite).
    method: str
    stream_id: str
    #: Shingle Jaccard for "minhash", story score for "story", else "".
    similarity: str = ""
