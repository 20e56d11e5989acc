"""OPML subscription lists in and out: pure functions over bytes and feed lists.

OPML 1.0/2.0 (opml.org/spec2): feeds are ``<outline>`` elements with an
``xmlUrl``, at any depth (readers nest them in folders). newswire has no
folders: an imported feed keeps its title (as its name) and its URL.
"""

from __future__ import annotations

import json
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import ConfigError
from .model import FeedConfig
from .urls import InvalidURL, canonicalize, host_of


@dataclass(frozen=True)
class OpmlFeed:
    """One feed outline of an OPML file."""

    title: str
    url: str
    folder: str = ""


def parse_opml(data: bytes, *, source: str = "OPML file") -> list[OpmlFeed]:
    """The feed outlines of an OPML document, in document order.

    Raises :class:`ConfigError` for a document that is not OPML. Documents that
    declare entities are refused outright (no entity expansion, however small).
    """
    if b"<!ENTITY" in data.upper():
        raise ConfigError(f"{source}: declares XML entities, refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ConfigError(f"{source} is not valid XML: {e}") from None
    if root.tag.lower() != "opml" or root.find("body") is None:
        raise ConfigError(f"{source} is not OPML (no <opml><body>)")
    feeds: list[OpmlFeed] = []

    def walk(node: ET.Element, folder: str) -> None:
        for child in node:
            if child.tag != "outline":
                continue
            attrs = {k.lower(): v for k, v in child.attrib.items()}
            title = " ".join((attrs.get("title") or attrs.get("text") or "").split())
            url = (attrs.get("xmlurl") or "").strip()
            if url:
                feeds.append(OpmlFeed(title=title, url=url, folder=folder))
            walk(child, title if not url else folder)

    walk(root.find("body"), "")  # type: ignore[arg-type]
    return feeds


_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def feed_name(text: str) -> str:
    """A feeds-file name from a title or host: ASCII letters, digits, ``.``, ``_``, ``-``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = _NOT_NAME.sub("-", ascii_text.lower()).strip("-._")
    return name[:56].rstrip("-._")


def plan_import(
    existing: Sequence[FeedConfig], outlines: Iterable[OpmlFeed]
) -> tuple[list[FeedConfig], list[str]]:
    """The feeds to add for ``outlines``, and why the others were skipped.

    A feed whose canonical URL is already configured (or listed twice) is
    skipped; each new one gets a unique name from its title, else its host.
    """
    names = {f.name for f in existing}
    urls: set[str] = set()
    for feed in existing:
        try:
            urls.add(canonicalize(feed.url))
        except InvalidURL:
            continue
    added: list[FeedConfig] = []
    skipped: list[str] = []
    for outline in outlines:
        label = outline.title or outline.url
        try:
            canonical = canonicalize(outline.url)
        except InvalidURL as e:
            skipped.append(f"{label}: {e}")
            continue
        if canonical in urls:
            skipped.append(f"{label}: already in the feeds file ({outline.url})")
            continue
        base = feed_name(outline.title) or feed_name(host_of(canonical)) or "feed"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        urls.add(canonical)
        added.append(FeedConfig(name=name, url=outline.url))
    return added, skipped


def toml_entries(feeds: Iterable[FeedConfig]) -> str:
    """``[[feeds]]`` tables for ``feeds``, in the feeds file's form."""
    out = []
    for feed in feeds:
        # A JSON string is a valid TOML basic string: the same escapes, quotes and all.
        table = f"[[feeds]]\nname = {json.dumps(feed.name)}\nurl = {json.dumps(feed.url)}\n"
        if feed.interval:
            table += f"interval = {feed.interval}\n"
        out.append(table)
    return "\n".join(out)


def to_opml(feeds: Iterable[tuple[str, str]], *, title: str = "newswire feeds") -> bytes:
    """An OPML 2.0 document listing ``(name, url)`` pairs."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for name, url in feeds:
        ET.SubElement(body, "outline", type="rss", text=name, title=name, xmlUrl=url)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
