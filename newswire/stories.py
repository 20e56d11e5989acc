"""Stories: grouping a rewritten article with the one it retells (level 2 of dedup).

Pure functions, no I/O. A paraphrase shares almost no word 3-shingles with its
original (Jaccard about 0.1), so the near-duplicate index cannot see it. What a
rewrite keeps are the facts: the people, places and organisations (named
entities), the figures, the content words, sometimes a quote, and the time: it
is written within hours or days. :class:`StoryFeatures` finds those in a clean
text; :func:`compare` scores two articles on them; :func:`index_terms` names the
few distinctive terms (entities and figures) under which an article is posted in
the Redis inverted index, so that candidates come from an index, not a scan.

The decision is built for precision (NEWS-SHAPES shape 4: a different story with
the same people on the same site must stay apart): every signal must agree.
Content words and entities must overlap, figures or quotes must be shared, and
the two must be published close in time.

``TERMS_VERSION`` is part of every index key, so a change of term extraction
starts a new index.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from .neardup import jaccard

TERMS_VERSION = 1

# Function words and newsroom filler: they say nothing about which story it is.
_STOPWORDS = frozenset("""
a about above after again against ago all almost also although always am among an and
another any anyone are around as at away back be became because been before being
below between both but by can cannot could did do does doing done down during each
either else even ever every few for from further had has have having he her here hers
him his how however i if in including into is it its itself just last least less like
made make many may me meanwhile might more most much must my near neither never new
next no nor not now of off often on once one only or other others our out over own
per rather said same say says several she should since so some still such than that
the their them then there these they this those though through thus to too toward
towards under until up upon us very via was we were what when where whether which
while who whom whose why will with within without would yet you your told according
week weeks month months year years day days thursday friday monday tuesday wednesday
saturday sunday mr mrs ms dr january february march april june july august
september october november december
""".split())

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)
# The words of _WORD that can start with a capital (a letter but not a-z: ASCII A-Z or
# not ASCII) and have no letter before them: the rest, most of a text, are skipped
# inside the regex engine. A match just after an apostrophe is checked with
# _WordStarts. The first character comes first and what precedes it is looked at
# after (two characters back): a pattern that opens with a character class is searched
# for by the engine's fast scan, one that opens with a look-behind is tried at every
# position (108 -> 71 us on a bench page's text, 161 -> 125 on a real one's).
_CAPITALISED = re.compile(r"[^\W\d_a-z](?<![^\W\d_].)[^\W\d_]*(?:['’][^\W\d_]+)?",
                          re.UNICODE)
# A run of digits with no word character or dot before it, found the same way (80 -> 40
# and 141 -> 49 us).
_NUMBER = re.compile(r"\d(?<![\w.]\d)\d*(?:[.,]\d+)*")
_QUOTE = re.compile(r"[“\"«„]([^”\"»“]{12,})[”\"»“]")
_STEM = 6


class StoryFeatures:
    """What a rewrite keeps of a text, each found when first read, so that a comparison
    that ends early finds only what it read (:func:`compare_if_possible` reads the
    content words, two thirds of the cost, last). ``names`` and ``figures``: the text's
    entities and numbers when they are known already (stored with the article)."""

    def __init__(self, text: str, *, names: frozenset[str] | None = None,
                 figures: frozenset[str] | None = None) -> None:
        self.text = text
        if names is not None:
            self.entities = names
        if figures is not None:
            self.numbers = figures

    @cached_property
    def content(self) -> frozenset[str]:
        """Content-word stems."""
        return content_words(self.text)

    @cached_property
    def entities(self) -> frozenset[str]:
        """Lower-cased capitalised names (single words)."""
        return frozenset(entities(self.text))

    @cached_property
    def numbers(self) -> frozenset[str]:
        """Figures, normalized ("2.4", "12", "19")."""
        return numbers(self.text)

    @cached_property
    def quotes(self) -> frozenset[str]:
        """Word 3-shingles of the quoted passages."""
        return quote_shingles(self.text)


@dataclass(frozen=True)
class StoryMatch:
    """The evidence that two articles tell the same story, and the verdict."""

    score: float
    content: float  # overlap coefficient of content words
    entities: float  # overlap coefficient of entities
    shared_entities: int
    shared_numbers: int
    quotes: float  # Jaccard of quote shingles
    hours: float  # publication times apart
    same: bool

    def evidence(self) -> str:
        return (f"content={self.content:.2f} entities={self.entities:.2f}"
                f"({self.shared_entities}) numbers={self.shared_numbers}"
                f" quotes={self.quotes:.2f} hours={self.hours:.1f}")


@dataclass(frozen=True)
class StoryThresholds:
    """When two articles are one story. ``score`` and ``window_hours`` come from
    :class:`newswire.settings.Settings` (``NEWSWIRE_STORY_THRESHOLD``,
    ``NEWSWIRE_STORY_WINDOW_HOURS``); the per-signal floors are fixed here, set on the
    NEWS-SHAPES pairs with precision first."""

    score: float = 0.60
    min_content: float = 0.50
    min_entities: float = 0.45
    min_shared_entities: int = 4
    min_shared_numbers: int = 2
    window_hours: float = 72.0


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _stem(word: str) -> str:
    # Truncation is a crude stemmer, but a symmetric one: "negotiating" and
    # "negotiations" meet at "negoti"; precision is kept by the other signals.
    return word[:_STEM]


def content_words(text: str) -> frozenset[str]:
    """Stems of the words of ``text`` that are not function words."""
    out = set()
    for found in _WORD.findall(_fold(text)):
        word = found.casefold().replace("’", "'")
        if word.endswith("'s"):
            word = word[:-2]
        if len(word) >= 3 and word not in _STOPWORDS:
            out.add(_stem(word))
    return frozenset(out)


def entities(text: str) -> Counter[str]:
    """Capitalised words that are names, with how often each occurs.

    A capitalised word at the start of a sentence is a name only when the text
    also capitalises it elsewhere, mid-sentence; function words never are.
    """
    mid: Counter[str] = Counter()
    initial: Counter[str] = Counter()
    for paragraph in _fold(text).split("\n"):
        at, starts = 0, _WordStarts(paragraph)
        while match := _CAPITALISED.search(paragraph, at):
            word, start = match.group(), match.start()
            if start and paragraph[start - 1] in "'’" and not starts.at(start):
                at = start + 1  # inside a word: a word may still start further on in it
                continue
            at = match.end()
            if not word[0].isupper():
                continue
            key = word.casefold().replace("’", "'")
            if key.endswith("'s"):
                key = key[:-2]
            if key in _STOPWORDS or len(key) < 2:
                continue
            before = paragraph[max(0, start - 4): start].rstrip(" “\"«‘'(")
            starts_sentence = not before or before[-1] in ".!?:;"
            (initial if starts_sentence else mid)[key] += 1
    found = Counter(mid)
    for key, n in initial.items():
        if key in mid:
            found[key] += n
    return found


class _WordStarts:
    """Where the words of :data:`_WORD` start in one text, read once, left to right.

    For a capital just after an apostrophe: it starts a word when that apostrophe
    ended the word before ("rock'n'Roll"), not when it joins the letters around it
    ("d'Artagnan"). Asked in increasing positions, as :func:`entities` scans, so a
    paragraph's words are read at most once however many such capitals it has.
    """

    def __init__(self, text: str) -> None:
        self._words = _WORD.finditer(text)
        self._after_last = len(text) + 1
        self._start = -1  # where the word read last starts

    def at(self, position: int) -> bool:
        while self._start < position:
            word = next(self._words, None)
            self._start = word.start() if word else self._after_last
        return self._start == position


def numbers(text: str) -> frozenset[str]:
    """The figures of a text: '2.4', '12', '2025' (commas as thousands separators dropped)."""
    out = set()
    for match in _NUMBER.finditer(_fold(text)):
        value = match.group()
        value = value.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", value) else value
        value = value.replace(",", ".")
        out.add(value)
    return frozenset(out)


def quote_shingles(text: str) -> frozenset[str]:
    out: set[str] = set()
    for match in _QUOTE.finditer(_fold(text)):
        words = [w.casefold() for w in _WORD.findall(match.group(1))]
        out.update(" ".join(words[i: i + 3]) for i in range(len(words) - 2))
    return frozenset(out)


def index_terms(text: str, limit: int = 16) -> list[str]:
    """The terms an article is posted under in the story index: its most frequent
    entities, then its longer figures, at most ``limit``. A rewrite keeps most of
    these, so it finds its original among the postings of a few of them."""
    return terms_of(entities(text), numbers(text), limit)


def terms_of(names: Counter[str], figures: frozenset[str], limit: int = 16) -> list[str]:
    """:func:`index_terms` of a text whose :func:`entities` and :func:`numbers` are
    known."""
    ranked = [name for name, _ in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))]
    terms = [f"e:{name}" for name in ranked[: max(limit - 4, limit * 3 // 4)]]
    terms += [f"n:{figure}" for figure in sorted(n for n in figures if len(n) >= 2)]
    return terms[:limit]


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / min(|a|, |b|): a shorter rewrite still scores as covered."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def _ruled_out(a: StoryFeatures, b: StoryFeatures, hours: float, t: StoryThresholds) -> bool:
    """Whether the signals other than content words already say "not one story"; the
    quotes are read only when the figures are not enough."""
    return (
        hours > t.window_hours
        or len(a.entities & b.entities) < t.min_shared_entities
        or _overlap(a.entities, b.entities) < t.min_entities
        or (len(a.numbers & b.numbers) < t.min_shared_numbers
            and jaccard(a.quotes, b.quotes) < 0.2)
    )


def _hours(published_a: datetime, published_b: datetime) -> float:
    return abs((published_a - published_b).total_seconds()) / 3600


def compare(
    a: StoryFeatures,
    b: StoryFeatures,
    published_a: datetime,
    published_b: datetime,
    thresholds: StoryThresholds = StoryThresholds(),
) -> StoryMatch:
    """Score whether ``a`` and ``b`` tell the same story; ``same`` is the verdict."""
    t = thresholds
    content = _overlap(a.content, b.content)
    ents = _overlap(a.entities, b.entities)
    shared_numbers = len(a.numbers & b.numbers)
    quotes = jaccard(a.quotes, b.quotes)
    hours = _hours(published_a, published_b)
    # Figures and quotes are facts a rewrite keeps; they add to the evidence.
    facts = min(1.0, shared_numbers / 4 + quotes)
    score = 0.5 * content + 0.3 * ents + 0.2 * facts
    same = (score >= t.score and content >= t.min_content
            and not _ruled_out(a, b, hours, t))
    return StoryMatch(round(score, 3), round(content, 3), round(ents, 3),
                      len(a.entities & b.entities), shared_numbers, round(quotes, 3),
                      round(hours, 2), same)


def compare_if_possible(
    a: StoryFeatures,
    b: StoryFeatures,
    published_a: datetime,
    published_b: datetime,
    thresholds: StoryThresholds = StoryThresholds(),
) -> StoryMatch | None:
    """:func:`compare`, or None where that can't be ``same``: when the publication
    times, entities, figures and quotes already rule a story out, no content words
    are read (nor found). Most candidates of a busy site share a few common names and
    no more."""
    if _ruled_out(a, b, _hours(published_a, published_b), thresholds):
        return None
    return compare(a, b, published_a, published_b, thresholds)
