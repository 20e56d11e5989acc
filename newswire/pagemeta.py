"""A page's metadata from its own markup: title, published time, authors, image,
canonical URL, language. Pure functions over a parsed page.

Why not trafilatura's metadata pass: it costs about a fifth of trafilatura's whole
extraction time (measured with ``bench/extract.py``), most of it in heuristics for
pages that say nothing about themselves, while news pages state their metadata in
Open Graph, schema.org (JSON-LD or microdata) and ``<time>`` elements, which are read
here with a few XPath queries. htmldate, trafilatura's own date finder, is the
fallback for a page with no machine-readable date. Its date has no time of day,
which is why the markup comes first: ``article:published_time`` says
``2025-02-20T14:05:00+03:00``, htmldate says ``2025-02-20``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from htmldate import find_date
from lxml import etree
from lxml.html import HtmlElement

from .model import iso, parse_iso

#: Separators between a headline and the site name in ``<title>``.
_TITLE_SUFFIX = re.compile(r"\s+[|\-–—:·]\s+[^|\-–—:·]{2,60}$")
_DATE_META = (
    "article:published_time", "og:published_time", "datepublished", "pubdate",
    "publishdate", "publish-date", "date", "dc.date", "dc.date.issued", "dcterms.created",
    "sailthru.date", "parsely-pub-date",
)
_AUTHOR_META = ("author", "article:author", "byl", "dc.creator", "parsely-author")
#: XPaths compiled once: ``tree.xpath(text)`` compiles its text on every call.
_JSON_LD_SCRIPTS = etree.XPath('//script[@type="application/ld+json"]')
_CANONICAL_LINKS = etree.XPath('//link[@rel="canonical"]/@href')
_ITEMPROP_DATES = etree.XPath('//*[@itemprop="datePublished"]/@datetime')
_TIME_DATES = etree.XPath("//body//time/@datetime")


@dataclass(frozen=True)
class PageMeta:
    """What a page says about itself ('' where it says nothing)."""

    title: str = ""
    published: str = ""  # ISO 8601 UTC
    authors: tuple[str, ...] = ()
    image: str = ""
    canonical_url: str = ""
    language: str = ""
    site_name: str = ""
    description: str = ""


def squash(text: str) -> str:
    """Every run of white space as one space, none at the ends."""
    return " ".join(text.split())


def meta_tags(tree: HtmlElement) -> dict[str, str]:
    """Every ``<meta property|name|itemprop=KEY content=...>`` of the page, keys lower-cased,
    the first non-empty content of each (one pass over the page's ``<meta>``)."""
    found: dict[str, str] = {}
    for element in tree.iterfind(".//meta"):
        content = squash(element.get("content") or "")
        if not content:
            continue
        for attribute in ("property", "name", "itemprop"):
            key = (element.get(attribute) or "").strip().lower()
            if key and key not in found:
                found[key] = content
    return found


def _first(metas: dict[str, str], *names: str) -> str:
    """The content of the first of ``names`` (lower case) the page has, else ''."""
    return next((metas[n] for n in names if n in metas), "")


def _json_ld(tree: HtmlElement) -> Iterator[dict[str, Any]]:
    """Every JSON-LD object of the page, ``@graph`` members included."""
    for script in _JSON_LD_SCRIPTS(tree):
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue  # broken JSON-LD is common; the other sources remain
        stack = data if isinstance(data, list) else [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, dict):
                yield item
                graph = item.get("@graph")
                if isinstance(graph, list):
                    stack.extend(graph)
            elif isinstance(item, list):
                stack.extend(item)


def to_iso(value: str) -> str:
    """ISO 8601 UTC of a date or timestamp as pages write it ('' if unreadable). A date
    without a time is midnight UTC; a time without a zone is taken as UTC."""
    try:
        return iso(parse_iso(value))
    except ValueError:
        return ""


def _dates(tree: HtmlElement, metas: dict[str, str], ld: list[dict[str, Any]]) -> Iterator[str]:
    """The publication dates a page states, most trusted first, each looked for only
    once the ones before are found unreadable: most pages have the first (the XPaths
    of the later ones took half of :func:`page_meta` on the bench's pages)."""
    yield _first(metas, *_DATE_META)
    for item in ld:
        yield str(item.get("datePublished") or "")
    yield from map(str, _ITEMPROP_DATES(tree))
    yield from map(str, _TIME_DATES(tree)[:1])


def _published(tree: HtmlElement, metas: dict[str, str], ld: list[dict[str, Any]]) -> str:
    for candidate in _dates(tree, metas, ld):
        if published := to_iso(candidate):
            return published
    found = find_date(tree, extensive_search=False, original_date=True)
    return to_iso(found) if found else ""


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    return []


def _authors(metas: dict[str, str], ld: list[dict[str, Any]]) -> tuple[str, ...]:
    names: list[str] = []
    for item in ld:
        names.extend(_names(item.get("author")))
    if not names:
        meta = _first(metas, *_AUTHOR_META)
        if meta and not meta.startswith(("http://", "https://")):
            names.extend(re.split(r"\s*(?:;|,|\band\b)\s*", meta))
    cleaned: list[str] = []
    for name in names:
        name = squash(re.sub(r"^by\s+", "", name, flags=re.IGNORECASE))
        if name and len(name) <= 100 and name not in cleaned:
            cleaned.append(name)
    return tuple(cleaned)


def _title(tree: HtmlElement, metas: dict[str, str], site_name: str) -> str:
    og = _first(metas, "og:title", "twitter:title")
    if og:
        return og
    h1 = [squash(h.text_content()) for h in tree.iterfind(".//h1")]
    h1 = [h for h in h1 if h]
    if len(h1) == 1:
        return h1[0]
    title = squash(tree.findtext(".//title") or "")
    if site_name and title.endswith(site_name):
        return _TITLE_SUFFIX.sub("", title) or title
    return title


def page_meta(tree: HtmlElement) -> PageMeta:
    """Everything :class:`PageMeta` holds, read from ``tree``."""
    metas = meta_tags(tree)
    ld = list(_json_ld(tree))
    site_name = _first(metas, "og:site_name", "application-name")
    canonical = [str(h).strip() for h in _CANONICAL_LINKS(tree)]
    language = (tree.get("lang") or _first(metas, "og:locale", "content-language")
                or "").replace("_", "-").split("-")[0].strip().lower()[:8]
    return PageMeta(
        title=_title(tree, metas, site_name),
        published=_published(tree, metas, ld),
        authors=_authors(metas, ld),
        image=_first(metas, "og:image", "og:image:url", "twitter:image"),
        canonical_url=next((c for c in canonical if c), "") or _first(metas, "og:url"),
        language=language,
        site_name=site_name,
        description=_first(metas, "og:description", "description"),
    )
