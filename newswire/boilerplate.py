"""Generic boilerplate rules: what news pages wrap around an article. Pure functions.

Two passes, both site-independent (site profiles in :mod:`newswire.profiles`
add to them, learned per-site blocks in :mod:`newswire.siteblocks` come after):

* :func:`prune_tree` works on the parsed page *before* main-text extraction. It
  removes whole boxes: donation and membership appeals, newsletter sign-ups,
  ad slots, captions and credits, share bars. Appeals are prose inside the
  article's own container (NEWS-SHAPES shapes 2 and 5), so extractors keep
  them; what gives them away is a box whose text is mostly appeal vocabulary
  and call-to-action labels. A box is judged on all of its text at once, and
  only the outermost qualifying box goes, so the article container around it
  (mostly plain prose) stays.
* :func:`drop_lines` works on the extracted paragraphs: "Read more:" lines,
  bylines and date lines repeated in the body, photo credits, "Original url:"
  trailers, copyright lines, share and comment prompts, lone button labels.
  Each rule matches a whole short paragraph, never a sentence inside one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lxml import etree
from lxml.html import HtmlElement

# -- Before extraction: boxes ---------------------------------------------------------------

#: Class or id words that name a box that is not article text. Matched against the
#: words of the attribute (split at anything not a letter or digit).
_BOX_WORDS = frozenset({
    "ad", "ads", "adslot", "advert", "adverts", "advertisement", "advertising", "dfp",
    "sponsor", "sponsored", "promo", "promotion", "promoted", "cta", "newsletter",
    "newsletters", "subscribe", "subscription", "signup", "donate", "donation", "donations",
    "contribute", "contribution", "contributions", "membership", "paywall", "appeal",
    "support", "share", "sharing", "social", "sharebar", "related", "recommended", "outbrain",
    "taboola", "cookie", "cookies", "consent", "caption", "figcaption", "credit", "credits",
    "byline", "dateline", "updated", "timestamp", "standfirst", "subtitle", "dek",
    "strapline", "kicker", "breadcrumb", "breadcrumbs", "tags", "comments", "comment",
})
#: Longer words that name such a box even inside a compound ("newsletterbox").
_BOX_STEMS = re.compile(
    r"newsletter|subscri|donat|contribut|membership|paywall|advert|sponsor|outbrain|taboola"
    r"|breadcrumb|caption"
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
#: Elements that can be a box. Never ``article``, ``main`` or ``body``.
_BOX_TAGS = frozenset({
    "div", "section", "aside", "form", "footer", "header", "figure", "figcaption", "ul", "ol",
    "details", "dialog", "p", "span", "small", "nav", "iframe", "ins", "button", "label",
    "blockquote", "h2", "h3", "h4", "h5", "h6", "li",
})
#: Elements whose whole text is one paragraph (their children are inline).
_PARAGRAPH_TAGS = frozenset({
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "button", "label", "dt", "dd", "figcaption",
    "blockquote", "summary", "legend", "option", "a",
})

#: Elements whose text a reader never sees: not measured (scripts are most of the
#: bytes of many news pages).
_INVISIBLE = frozenset({"script", "style", "noscript", "template", "head", "title", "svg"})

# Cue groups: each names one trait of an appeal box.
_DONATE = re.compile(
    r"\b(donat\w*|contribut(e|es|ed|ion|ions|ing)|support(ing)? (us|our|independent|the)\b"
    r"|supporters?\b|make a (gift|contribution)|become a (member|supporter|patron|friend)"
    r"|membership|patreon|one-time gift|monthly gift|chip in|pledge)",
    re.IGNORECASE,
)
_READERS = re.compile(
    r"\b(dear readers?|a message from|readers like you|reader[- ](funded|supported)"
    r"|independent (journalism|news|reporting|media)|free of charge|without a paywall"
    r"|behind a paywall|free (and open|for everyone|to read|for all)|we need your help"
    r"|help us (keep|continue|stay)|can you help|costs money|keep(s)? (\w+ ){0,4}"
    r"(open|free|independent|going|alive)|before you go)",
    re.IGNORECASE,
)
_LATER = re.compile(
    r"\b(remind me later|not ready to (support|give|contribute|donate)|maybe later|no thanks"
    r"|already (a )?(member|supporter|subscriber|donor))",
    re.IGNORECASE,
)
_NEWSLETTER = re.compile(
    r"\b(newsletters?|sign up|signup|subscribe|subscription|inbox|unsubscribe)\b", re.IGNORECASE
)
#: Whole labels of buttons and links in call-to-action boxes.
_LABELS = frozenset({
    "once", "one-time", "one time", "monthly", "annual", "annually", "yearly", "weekly",
    "continue", "donate", "donate now", "give now", "contribute", "support", "support us",
    "support now", "subscribe", "subscribe now", "sign up", "sign me up", "close", "dismiss",
    "remind me later", "remind me later.", "not now", "maybe later", "no thanks",
    "not ready to support today?", "submit", "join", "join now", "learn more", "read more",
    "share", "tweet", "email", "print", "copy link", "advertisement", "advertising", "ad",
})
_DONATE_BIT, _READERS_BIT, _LATER_BIT, _LABEL_BIT, _NEWSLETTER_BIT = 1, 2, 4, 8, 16
_APPEAL_BITS = (_DONATE_BIT, _READERS_BIT, _LATER_BIT, _LABEL_BIT)

#: A box judged an appeal has at most this share of its text outside cue-bearing
#: paragraphs. The MT appeal is about a third plain prose; an article container
#: holding even a short story and the appeal is well over half.
APPEAL_MAX_PLAIN = 0.4
#: An appeal box is short: longer boxes are article containers.
APPEAL_MAX_CHARS = 6000
#: Boxes named as boilerplate go only while, all boxes of that name together, they
#: hold at most this share of the page's text.
NAMED_MAX_SHARE = 0.3
NEWSLETTER_MAX_CHARS = 1200


#: Each cue group: its bit, the substrings without which its pattern cannot match, and
#: its pattern. The substrings are a cheap test that spares the full pattern most of a
#: page's text (measured with bench/extract.py: the patterns alone took as long as
#: trafilatura on real pages). They are tested with ``in``, one after the other: a
#: regular expression of them all tries every alternative at every character, ``in``
#: runs each as one C search (``_text_cues`` of a page's texts over ``_CACHED_CHARS``:
#: 180 -> 100 us a bench/worker_throughput.py page, 439 -> 294 us a bench/extract.py
#: page).
_CUE_GROUPS: tuple[tuple[int, tuple[str, ...], re.Pattern[str]], ...] = (
    (_DONATE_BIT, ("donat", "contribut", "support", "make a", "become a", "membership",
                   "patreon", "gift", "chip in", "pledge"), _DONATE),
    (_READERS_BIT, ("reader", "a message from", "independent", "free", "paywall", "help",
                    "costs money", "keep", "before you go"), _READERS),
    (_LATER_BIT, ("later", "not ready", "no thanks", "already"), _LATER),
    (_NEWSLETTER_BIT, ("newsletter", "sign up", "signup", "subscri", "inbox"), _NEWSLETTER),
)
#: Every group's substrings: most text has none of them.
_ANY_HINT = tuple(hint for _, hints, _ in _CUE_GROUPS for hint in hints)


def _holds_any(text: str, parts: tuple[str, ...]) -> bool:
    for part in parts:
        if part in text:
            return True
    return False


def _cues(text: str) -> int:
    """The cue bits of one paragraph's text (or one run of text between elements)."""
    if len(text) > _CACHED_CHARS:
        return _text_cues(text)
    return _short_cues(text)


def _text_cues(text: str) -> int:
    stripped = " ".join(text.split()).lower()
    if not stripped:
        return 0
    bits = 0
    if stripped in _LABELS or stripped.rstrip(".!?:") in _LABELS:
        bits |= _LABEL_BIT
    if not _holds_any(stripped, _ANY_HINT):
        return bits
    for bit, hints, pattern in _CUE_GROUPS:
        if _holds_any(stripped, hints) and pattern.search(stripped):
            bits |= bit
    return bits


#: Texts up to this long are mostly a site's own labels, links and headings: the same
#: on every page of the site, so their cues are remembered.
_CACHED_CHARS = 100
_short_cues = functools.lru_cache(maxsize=8192)(_text_cues)


@dataclass(slots=True)
class _Box:
    tag: str
    chars: int  # all text
    plain: int  # text in paragraphs with no appeal cue
    bits: int
    form: bool  # holds a form control


_FORM_TAGS = frozenset({"form", "input", "select", "textarea"})

#: An element's text with its descendants' (not its tail): what lxml's ``text_content()``
#: gives (the same on the 20,814 elements of bench/extract.py's 39 pages) in libxml2's
#: text serializer instead of an XPath ``string()``: 0.26 -> 0.10 ms for the paragraphs
#: of a bench/worker_throughput.py page.
_text_of = functools.partial(etree.tostring, method="text", encoding=str, with_tail=False)


def names_a_box(element: HtmlElement) -> bool:
    """Whether the element's class or id says it is not article text."""
    return _names_a_box(element.get("class")) or _names_a_box(element.get("id"))


@functools.lru_cache(maxsize=4096)  # a site uses the same few class names on every page
def _names_a_box(value: str | None) -> bool:
    if not value:
        return False
    value = value.lower()
    return bool(_BOX_STEMS.search(value)) or any(
        word in _BOX_WORDS for word in _WORD_SPLIT.split(value))


def _measure(root: HtmlElement) -> dict[HtmlElement, _Box]:
    """Text size, plain-prose size and cues of every element, children first.

    Run on every page, so written for speed: one pass, each run of text measured
    once (a paragraph's as a whole), no per-element allocation besides the box (and a
    set entry for the parent of a form control)."""
    boxes: dict[HtmlElement, _Box] = {}
    # The parents of the elements found to hold a form control: children come first
    # (reversed document order), so an element's own flag is known when it comes.
    holds_form: set[HtmlElement] = set()
    for element in reversed(list(root.iter(etree.Element))):
        tag = element.tag.lower()
        if tag in _INVISIBLE:
            continue
        form = tag in _FORM_TAGS or element in holds_form
        if tag not in _BOX_TAGS and (parent := element.getparent()) is not None \
                and parent.tag in _PARAGRAPH_TAGS:
            # Inline in a paragraph, which measures all of its text itself: only
            # whether it holds a form control counts, so only such a one is kept.
            if form:
                boxes[element] = _Box(tag, 0, 0, 0, True)
                holds_form.add(parent)
            continue
        if tag in _PARAGRAPH_TAGS:
            text = _text_of(element)
            chars = len(text.strip())
            bits = _cues(text) if chars else 0
            plain = 0 if bits & ~_NEWSLETTER_BIT else chars
        else:
            chars = plain = bits = 0
            text = element.text
            if text and (size := len(text.strip())):
                found = _cues(text)
                chars, bits = size, found
                plain = 0 if found & ~_NEWSLETTER_BIT else size
            for child in element:
                inner = boxes.get(child)
                if inner is not None:
                    chars += inner.chars
                    plain += inner.plain
                    bits |= inner.bits
                text = child.tail
                if text and (size := len(text.strip())):
                    found = _cues(text)
                    chars += size
                    bits |= found
                    if not found & ~_NEWSLETTER_BIT:
                        plain += size
        if form and (parent := element.getparent()) is not None:
            holds_form.add(parent)
        boxes[element] = _Box(tag, chars, plain, bits, form)
    return boxes


def _is_appeal(box: _Box) -> bool:
    groups = sum(1 for bit in _APPEAL_BITS if box.bits & bit)
    return (
        groups >= 2
        and box.bits & (_DONATE_BIT | _READERS_BIT) != 0
        and 0 < box.chars <= APPEAL_MAX_CHARS
        and box.plain <= APPEAL_MAX_PLAIN * box.chars
    )


def _is_newsletter_box(box: _Box) -> bool:
    return (
        bool(box.bits & _NEWSLETTER_BIT)
        and (box.form or bool(box.bits & _LABEL_BIT))
        and 0 < box.chars <= NEWSLETTER_MAX_CHARS
    )


def prune_tree(root: HtmlElement, *, extra: Iterable[HtmlElement] = ()) -> int:
    """Remove boilerplate boxes from ``root`` in place; the number removed.

    ``extra`` are elements a site profile names. Boxes are judged by their name
    only while they hold little of the page's text: a site that calls its article
    container ``post-share-wrapper`` keeps its article, and so does one that
    marks every body paragraph ``class="paywall"`` (a name many elements share
    and that holds much of the text names the body, not a box).
    """
    boxes = _measure(root)
    body_chars = max((b.chars for b in boxes.values() if b.tag in {"body", "html"}), default=0)
    named_max = max(NAMED_MAX_SHARE * body_chars, 400)
    doomed: list[HtmlElement] = list(extra)
    named: dict[str, list[HtmlElement]] = {}
    for element, box in boxes.items():
        tag = box.tag
        if tag not in _BOX_TAGS or box.chars == 0 and tag not in {"iframe", "ins", "form"}:
            continue
        if box.bits and (_is_appeal(box) or _is_newsletter_box(box)):  # both need cues
            doomed.append(element)
        elif names_a_box(element) and box.chars <= named_max:
            name = f"{tag}.{element.get('class') or ''}#{element.get('id') or ''}"
            named.setdefault(name, []).append(element)
    for group in named.values():
        if sum(boxes[element].chars for element in group) <= named_max:
            doomed.extend(group)
    removed = 0
    doomed_set = set(doomed)
    for element in doomed:
        if any(ancestor in doomed_set for ancestor in element.iterancestors()):
            continue  # its outermost box goes
        if element.getparent() is None:
            continue
        element.drop_tree()
        removed += 1
    return removed


# -- After extraction: lines ---------------------------------------------------------------

_MONTHS = (
    r"(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t|tember)?"
    r"|oct(ober)?|nov(ember)?|dec(ember)?)\.?"
)
_LINE_RULES: tuple[re.Pattern[str], ...] = tuple(re.compile(p, re.IGNORECASE) for p in (
    # "Read more: …", "Related: …", in a few languages.
    r"^(read (more|also|next)|also read|see also|related( stories| articles?)?|more on this"
    r"( story)?|recommended|watch|listen|читайте также|смотрите также|lesen sie auch"
    r"|mehr zum thema|lire aussi|à lire aussi|a lire aussi)\s*[:|»>–—-]",
    # "Original url: …", "Source: …" trailers.
    r"^(original (url|link|article|story)|source url|this article (was|is) (originally )?"
    r"(published|republished))\b.{0,300}$",
    # Photo and image credits.
    r"^(photo|photos|image|images|picture|photograph|credit|photo credit|illustration"
    r"|фото|foto|bild)\s*(credit)?\s*[:/©|]\s*.{1,120}$",
    r"^.{1,80}\s*/\s*(afp|reuters|ap|epa|getty images|alamy|tass|ria novosti|shutterstock"
    r"|dpa|anadolu|xinhua)( via getty images)?\.?$",
    # Copyright lines: "© AFP 2025", "Copyright 2025 Reuters".
    r"^(©|\(c\)|copyright\b).{0,100}$",
    # Bylines repeated in the body: "By Anna Petrova for AFP and John Keller for AFP".
    r"^by\s+[\w'’.-]+(\s+[\w'’.-]+){0,3}((\s*,\s*|\s+and\s+|\s+for\s+|\s+in\s+|\s+\|\s+)"
    r"[\w'’.-]+(\s+[\w'’.-]+){0,3}){0,6}$",
    # Date lines: "LAST UPDATE | 24 Feb", "Updated: 20 February 2025, 12:30".
    r"^(last\s+)?(update[ds]?|published|posted|modified)\b\s*(on|at)?\s*[:|]?.{0,50}$",
    rf"^(\w+,?\s+)?(\d{{1,2}}(st|nd|rd|th)?\s+{_MONTHS}|{_MONTHS}\s+\d{{1,2}}(st|nd|rd|th)?)"
    r",?(\s+\d{4})?(,?\s+(at\s+)?\d{1,2}[:.]\d{2}(\s*[ap]\.?m\.?)?(\s+\w{2,5})?)?$",
    r"^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}(,?\s+\d{1,2}[:.]\d{2}(\s*[ap]\.?m\.?)?)?$",
    # Share, comment and follow prompts.
    r"^(share (this|on|the)( article| story| post)?|share this|join the (conversation|discussion)"
    r"|leave a (comment|reply)|comments?( \(\d+\))?|\d+ comments?|follow us on|click here to"
    r"|tap here to|sign up (for|to) .{0,80}newsletter|subscribe to .{0,60}(newsletter|channel)"
    r"|get (our|the) .{0,40}newsletter).{0,160}$",
    # Contact lines at the foot of an article.
    r"^(write to|(contact|email|e-mail) (the )?(author|reporter|writer|newsroom|us))\b.{0,120}$",
    # Appeal headers that survive as lone lines.
    r"^(a message from .{1,60}|dear readers?|we need your help( now)?|support (us|our work"
    r"|independent journalism)|before you go)[:.!,]?$",
))
_MAX_RULE_WORDS = 40  # a rule line is short; a long paragraph is body whatever its opening


def is_boilerplate_line(line: str) -> bool:
    """Whether one extracted paragraph is a generic boilerplate line."""
    words = line.split()
    if not words:
        return True
    stripped = " ".join(words)
    lowered = stripped.lower()
    if lowered in _LABELS or lowered.rstrip(".!?:…") in _LABELS:
        return True
    if len(words) > _MAX_RULE_WORDS:
        return False
    return any(rule.search(stripped) for rule in _LINE_RULES)


@dataclass(frozen=True)
class Run:
    """A run of paragraphs to drop: from one matching ``start`` through one matching
    ``end``, or through the ``count`` paragraphs after it, or else to the end."""

    start: re.Pattern[str]
    end: re.Pattern[str] | None = None
    count: int | None = None


@dataclass(frozen=True)
class LineRules:
    """Paragraph rules of a site profile: lines to drop, runs to drop."""

    drop: tuple[re.Pattern[str], ...] = ()
    runs: tuple[Run, ...] = ()


def drop_lines(
    paragraphs: Sequence[str],
    *,
    rules: LineRules = LineRules(),
    repeated: Iterable[str] = (),
) -> tuple[str, ...]:
    """``paragraphs`` without boilerplate lines.

    ``repeated`` are texts the page already gives elsewhere (its title, its
    authors' names): a paragraph that is just one of them is dropped.
    """
    echoes = {" ".join(r.split()).casefold() for r in repeated if r and r.strip()}
    kept: list[str] = []
    run: Run | None = None
    left = 0  # paragraphs left in a counted run
    for paragraph in paragraphs:
        if run is not None:
            if run.end is not None:
                if run.end.search(paragraph):
                    run = None
            else:
                left -= 1
                if left <= 0 and run.count is not None:
                    run = None
            continue
        run = next((r for r in rules.runs if r.start.search(paragraph)), None)
        if run is not None:
            left = run.count or 0
            if run.end is not None and run.end.search(paragraph) or run.count == 0:
                run = None
            continue
        squashed = " ".join(paragraph.split()).casefold()
        if squashed in echoes or any(rule.search(paragraph) for rule in rules.drop):
            continue
        if is_boilerplate_line(paragraph):
            continue
        kept.append(paragraph)
    return tuple(kept)

