"""Cleaning: page bytes in, a :class:`CleanedArticle` out. Pure functions.

trafilatura does the main-text extraction, around it the site profiles and
generic rules of :mod:`newswire.boilerplate` take out what news pages wrap
around an article; :mod:`newswire.pagemeta` reads the page's metadata. This
module decides the character set, picks title and date sanely (the feed first:
it is what the publisher said about the item), and falls back to the feed's
own content when a page gives no text.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from itertools import islice

import lxml.html
import trafilatura
from lxml import etree
from lxml.html import HtmlElement

from .boilerplate import LineRules, drop_lines, prune_tree
from .errors import ExtractError
from .model import MAX_TITLE, CleanedArticle, FeedEntry, FetchedResponse
from .pagemeta import PageMeta, page_meta, squash
from .profiles import Profiles, SiteProfile, profiles_for
from .urls import site_of

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
#: Control characters that are not valid in stored text (everything below
#: U+0020 except tab, newline and carriage return), and lone surrogates, which
#: UTF-8 cannot encode.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
#: Elements that start a new line of text.
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figure",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "ol", "p",
    "pre", "section", "table", "td", "th", "tr", "ul",
})
_BREAK = "\ue000"  # a private-use character, removed from the input first
#: Python codecs that are not text encodings a web page may declare (WHATWG
#: Encoding lists none of them): they raise, or turn bytes into other bytes.
_NOT_WEB_ENCODINGS = frozenset({
    "utf-7", "unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined",
    "mbcs", "oem", "palmos",
})

#: A profile's body container must hold at least this much text to be trusted.
BODY_MIN_CHARS = 200
#: Fewer words than this, and fewer letters than :data:`MIN_LETTERS` (for scripts
#: written without spaces), is no article: a menu, a lone label, a cookie notice. A
#: one-sentence news flash has more.
MIN_WORDS = 8
MIN_LETTERS = 30
_WORD = re.compile(r"\w+")
_LETTER = re.compile(r"[^\W\d_]")

HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml", "")


def _codec(name: str | bytes | None, *, in_page: bool = False) -> str | None:
    """The Python codec for a declared charset label, or None if it is no web encoding."""
    if not name:
        return None
    label = name.decode("ascii", "ignore") if isinstance(name, bytes) else name
    try:
        info = codecs.lookup(label.strip().lower())
    except LookupError:
        return None
    codec = info.name
    if not getattr(info, "_is_text_encoding", True) or codec in _NOT_WEB_ENCODINGS:
        return None
    # WHATWG Encoding: a page labelled latin-1/ascii is decoded as windows-1252.
    if codec in ("latin-1", "iso8859-1", "ascii"):
        return "cp1252"
    # A <meta> that could be read as ASCII can't be UTF-16/32: the prescan
    # algorithm takes such a declaration to mean UTF-8.
    if in_page and codec.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return codec


def decode_html(body: bytes, content_type: str = "") -> str:
    """Decode an HTML page: BOM, then the HTTP charset, then ``<meta charset>``,
    then UTF-8 if it decodes cleanly, else windows-1252 (the order of the
    WHATWG encoding sniffing algorithm, without its statistical guess).
    """
    for bom, bom_codec in _BOMS:
        if body.startswith(bom):
            return _decoded(body[len(bom):], bom_codec, "replace")
    match = _HEADER_CHARSET.search(content_type or "")
    candidates: list[str | None] = [_codec(match.group(1)) if match else None]
    meta = _META_CHARSET.search(body[:4096])
    candidates.append(_codec(meta.group(1), in_page=True) if meta else None)
    for candidate in candidates:
        if candidate:
            return _decoded(body, candidate, "replace")
    try:
        return _decoded(body, "utf-8")
    except UnicodeDecodeError:
        return _decoded(body, "cp1252", "replace")


#: The control characters :func:`_sanitize` removes, as bytes (those of :data:`_CONTROL`
#: below U+0080). In UTF-8 and windows-1252 each is a byte of its own, no other byte or
#: sequence decodes to one of them or to a surrogate: a page in one of those without
#: these bytes has nothing to remove.
_CONTROL_BYTES = bytes(b for b in range(0x80) if _CONTROL.match(chr(b)))
_BYTEWISE_CODECS = frozenset({"utf-8", "cp1252"})


def _decoded(body: bytes, codec: str, errors: str = "strict") -> str:
    """``body`` decoded and sanitized. The bytes are checked for control characters
    first where that tells (one C pass, 8 us against the character scan's 46 us on
    a bench/worker_throughput.py page, 0.27 against 0.97 ms on a bench/extract.py
    page)."""
    text = body.decode(codec, errors)
    if codec in _BYTEWISE_CODECS and len(body.translate(None, _CONTROL_BYTES)) == len(body):
        return text
    return _sanitize(text)


def _sanitize(text: str) -> str:
    return _CONTROL.sub("", text)


def paragraphs_from_html(fragment: str) -> tuple[str, ...]:
    """Paragraphs of an HTML fragment such as a feed's ``content:encoded``.

    Every block element (and ``<br>``) ends a line; loose text between blocks
    is kept as its own paragraph. Plain text splits at blank lines.
    """
    fragment = _sanitize(fragment).replace(_BREAK, "").strip()
    if not fragment:
        return ()
    if "<" not in fragment:
        return tuple(p for p in (squash(x) for x in re.split(r"\n\s*\n", fragment)) if p)
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return ()
    for bad in root.xpath(".//script|.//style|.//noscript|.//figure|.//figcaption"):
        bad.drop_tree()
    # Mark where blocks start and end with a character removed from the text
    # above, so that line breaks in the source stay plain whitespace.
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in _BLOCKS:
            element.text = _BREAK + (element.text or "")
            element.tail = _BREAK + (element.tail or "")
    lines = (squash(line) for line in root.text_content().split(_BREAK))
    return tuple(line for line in lines if line)


def page_site(url: str | None, meta: PageMeta) -> str:
    """The site of a page: its URL's registered domain, else its canonical URL's
    (a page read from a file has no URL of its own)."""
    return site_of(url or "") or site_of(meta.canonical_url)


def _isolate_body(tree: HtmlElement, profile: SiteProfile) -> None:
    """Keep only the profile's article container in ``<body>`` (when it has text)."""
    body = tree.find("body")
    if body is None:
        return
    for selector in profile.body:
        for container in selector(tree):
            if len(container.text_content().strip()) >= BODY_MIN_CHARS:
                for child in list(body):
                    body.remove(child)
                body.text = None
                body.append(container)
                return


_LEADS = etree.XPath("//body//*[{}]".format(" or ".join(
    f"contains(@class, '{word}')" for word in ("lead", "intro", "summary", "excerpt", "teaser",
                                                "description", "deck"))))


def _drop_standfirst(tree: HtmlElement, description: str) -> None:
    """Remove a standfirst that repeats the page's description: a lead or summary
    element whose text is the og/meta description is a teaser, not body."""
    description = squash(description).casefold()
    if not description:
        return
    for element in _LEADS(tree):
        if squash(element.text_content()).casefold() == description:
            element.drop_tree()


#: trafilatura's options, made once: an ``Extractor`` made per call reads its settings
#: from a ``ConfigParser`` each time (about 0.08 ms a page, a tenth of the extraction
#: on bench/worker_throughput.py's pages). The page's URL is left out: with links,
#: images and metadata off, trafilatura uses it only in its log messages.
_OPTIONS = trafilatura.settings.Extractor(
    output_format="python", comments=False, tables=True, precision=True, fast=True,
)


def _extract(tree: HtmlElement) -> list[str]:
    """The main text's paragraphs: trafilatura, without its metadata pass (see
    :mod:`newswire.pagemeta`), with ``favor_precision`` (F1 0.975 against 0.965
    without it on bench/extract.py's pages), with tables (layout tables of older
    sites hold whole articles; the F1 is the same) and ``fast``: no second opinion
    from readability and jusText, which changed no page of bench/extract.py once
    the boxes are pruned (F1 0.975 either way) and took a third of the time."""
    document = trafilatura.bare_extraction(tree, options=_OPTIONS)
    if not isinstance(document, trafilatura.settings.Document):
        return []
    # Table rows come as "| cell | cell |": keep the cells, not the frame.
    lines = (squash(line).removeprefix("| ").removesuffix(" |").strip("|").strip()
             for line in (document.text or "").split("\n"))
    return [line for line in lines if line]


def has_text(paragraphs: Sequence[str]) -> bool:
    """Whether ``paragraphs`` hold an article's worth of text (:data:`MIN_WORDS`)."""
    text = " ".join(paragraphs)
    # Counted only as far as the bounds: an article's thousands of words need not be.
    return (sum(1 for _ in islice(_WORD.finditer(text), MIN_WORDS)) >= MIN_WORDS
            or sum(1 for _ in islice(_LETTER.finditer(text), MIN_LETTERS)) >= MIN_LETTERS)


_OPEN_TITLE = re.compile(r"(<title\b[^>]*>)([^<]*)", re.IGNORECASE)
#: lxml.html's parser with one element class, ``HtmlElement``, picked in C: lxml.html
#: picks a class by tag (forms, inputs, labels...) in Python, each time an element is
#: first touched from Python, and neither newswire nor trafilatura uses what those
#: classes add (the same text on bench/extract.py's 31 pages and 30 bench pages;
#: 2.32 -> 2.15 ms a bench/worker_throughput.py page cleaned, 19.7 -> 19.4 ms a
#: newspaper4k page).
_PARSER = lxml.html.HTMLParser()
_PARSER.set_element_class_lookup(etree.ElementDefaultClassLookup(
    element=HtmlElement, comment=lxml.html.HtmlComment,
    pi=lxml.html.HtmlProcessingInstruction, entity=lxml.html.HtmlEntity,
))


def _parse(html: str) -> HtmlElement | None:
    """The parsed page. A ``<title>`` never closed swallows the whole page as its
    text (HTML parses a title's content as plain text up to ``</title>``); such a
    page is parsed again with the title closed where its plain text ends."""
    try:
        tree = lxml.html.document_fromstring(html, parser=_PARSER)
        title = tree.find(".//title")
        if title is not None and "<" in (title.text or "") and "</title" not in html.lower():
            tree = lxml.html.document_fromstring(_OPEN_TITLE.sub(r"\1\2</title>", html, 1),
                                                 parser=_PARSER)
    except (etree.ParserError, ValueError):
        return None
    return tree


def clean_page(
    html: str,
    *,
    url: str | None = None,
    entry: FeedEntry | None = None,
    profiles: Profiles | None = None,
) -> CleanedArticle | None:
    """The article in ``html``, or None when the page has no main text.

    ``entry`` is what the feed said of the item: its title, date and authors
    take precedence over what the page's markup claims. ``profiles`` are the
    site profiles in force (default: the shipped ones).

    The page goes through the site's profile (if one matches its domain or
    og:site_name), the generic box rules of :mod:`newswire.boilerplate`,
    trafilatura, and the generic and profile line rules. If pruning left no
    text, the page is extracted again untouched: a page with its boilerplate
    is better than no page.
    """
    if not html.strip():
        return None
    tree = _parse(html)
    if tree is None:
        return None
    meta = page_meta(tree)
    site = page_site(url, meta)
    if profiles is None:
        profiles = profiles_for(None)
    profile = profiles.match(site, meta.site_name)
    if profile is not None:
        doomed = [element for selector in profile.drop for element in selector(tree)]
        _isolate_body(tree, profile)
    else:
        doomed = []
    _drop_standfirst(tree, meta.description)
    prune_tree(tree, extra=doomed)
    paragraphs = _extract(tree)
    if not has_text(paragraphs):
        untouched = _parse(html)
        paragraphs = _extract(untouched) if untouched is not None else []
    feed_title = entry.title if entry else ""
    authors = entry.authors if entry and entry.authors else meta.authors
    kept = drop_lines(
        paragraphs,
        rules=profile.lines if profile else LineRules(),
        repeated=(meta.title, feed_title, *authors),
    )
    if not has_text(kept):
        return None
    return CleanedArticle(
        title=(feed_title or meta.title)[:MAX_TITLE].strip(),
        paragraphs=kept,
        authors=authors,
        published=(entry.published if entry and entry.published else meta.published),
        language=meta.language,
        image=meta.image,
        canonical_url=meta.canonical_url,
        source="page",
        site=site,
        profile=profile.name if profile else "",
    )


def clean_response(
    response: FetchedResponse,
    *,
    entry: FeedEntry | None = None,
    profiles: Profiles | None = None,
) -> CleanedArticle:
    """The article in a fetched page; :class:`ExtractError` when it is no HTML page
    or has no article text."""
    media_type = response.content_type.split(";", 1)[0].strip().lower()
    if media_type not in HTML_TYPES:
        raise ExtractError(f"{response.url} is not an HTML page ({media_type})")
    html = decode_html(response.body, response.content_type)
    cleaned = clean_page(html, url=response.url, entry=entry, profiles=profiles)
    if cleaned is None:
        raise ExtractError(f"{response.url} has no article text")
    return cleaned


def clean_feed_entry(entry: FeedEntry) -> CleanedArticle | None:
    """The article as the feed itself carries it (content:encoded, else summary)."""
    paragraphs = paragraphs_from_html(entry.content) or paragraphs_from_html(entry.summary)
    if not paragraphs:
        return None
    return CleanedArticle(
        title=entry.title,
        paragraphs=paragraphs,
        authors=entry.authors,
        published=entry.published,
        source="feed",
    )
