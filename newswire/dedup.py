"""Deciding what an incoming article is: pure, between two calls of the commit script.

The commit script counts the members of the article's near-duplicate buckets and
story postings (bounded sorted sets, see :mod:`newswire.schema`) and, when there
are any, hands them back instead of storing, with the text, publication time, names
and figures of the best few of each kind; the store asks :func:`decide`. The
script's next call stores the proposal, unless something was indexed meanwhile.
Levels, in order:

1. the same article (``minhash``): a candidate whose true word 3-shingle Jaccard with
   the article is at least ``neardup_threshold``, or one that contains (or is contained
   in) the other: a truncated copy, a lead paragraph standing in for the article
   (containment at least ``containment_threshold``, the shorter text at least
   ``MIN_CONTAINED_SHINGLES`` long);
2. the same story (``story``): a posting candidate that
   :func:`newswire.stories.compare` judges the same story.

Exact matches (URL, canonical URL, fingerprint) are decided in the script itself.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import xxhash

from . import neardup, stories
from .model import parse_iso

#: Story-index terms a posting must share with the article to be a story candidate.
MIN_SHARED_TERMS = 3
#: Shingles the shorter text needs for containment to count (a sentence or two is not
#: an article: a shared quote or dateline must not make two articles one).
MIN_CONTAINED_SHINGLES = 40


class RecentShingles:
    """The shingle sets of the last ``size`` texts met (articles probed, candidates
    verified), by a 128-bit digest of the text: most of a site's candidates are the
    same few recent articles, met again by every article that names what they name.
    Kept as arrays of their hashes, 4 KB for a 500-word article where the set takes
    50; a set's overlap with one is counted in a sixth of the time its text takes to
    shingle. Safe to share between threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._packed: OrderedDict[int, array[int]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> frozenset[int]:
        """The text's shingle set."""
        found = self._found(text)
        return found if isinstance(found, frozenset) else frozenset(found)

    def overlap(self, shingles: frozenset[int], text: str) -> tuple[int, int]:
        """How many of ``shingles`` the text has, and how many it has in all: counted
        against its array as it is (making a set of it would take twice as long)."""
        found = self._found(text)
        return len(shingles.intersection(found)), len(found)

    def _found(self, text: str) -> frozenset[int] | array[int]:
        key = xxhash.xxh3_128_intdigest(text.encode("utf-8"))
        with self._lock:
            packed = self._packed.get(key)
            if packed is not None:
                self._packed.move_to_end(key)
                return packed
        found = neardup.shingles(text)
        with self._lock:
            self._packed[key] = array("Q", found)
            if len(self._packed) > self._size:
                self._packed.popitem(last=False)
        return found


#: Texts whose shingle sets a process keeps: about 4.5 MB at most.
RECENT_TEXTS = 1024
shingles_of = RecentShingles(RECENT_TEXTS)


@dataclass(frozen=True)
class Probe:
    """An article about to be stored, as the candidate lookup sees it."""

    id: str
    published: datetime
    text: str
    shingles: frozenset[int]
    bands: tuple[str, ...]
    terms: tuple[str, ...]
    #: Its entities and figures (``newswire.stories``), found for its terms anyway and
    #: stored with it, so that it needs none found again as a later one's candidate.
    names: frozenset[str]
    figures: frozenset[str]

    @cached_property
    def features(self) -> stories.StoryFeatures:
        """Found as story candidates ask for them: most articles need no content words."""
        return stories.StoryFeatures(self.text, names=self.names, figures=self.figures)


def probe(article_id: str, text: str, published: datetime) -> Probe:
    shingle_set = shingles_of(text)
    names, figures = stories.entities(text), stories.numbers(text)
    return Probe(
        id=article_id,
        published=published,
        text=text,
        shingles=shingle_set,
        bands=tuple(neardup.band_keys(neardup.signature(shingle_set))),
        terms=tuple(stories.terms_of(names, figures)),
        names=frozenset(names),
        figures=figures,
    )


@dataclass(frozen=True)
class Candidate:
    """A stored article fetched to verify: its id, text and publication time, and its
    entities and figures as stored with it (None for one stored without them)."""

    id: str
    text: str
    published: str
    names: frozenset[str] | None = None
    figures: frozenset[str] | None = None


@dataclass(frozen=True)
class Decision:
    """The worker's proposal; the commit script has the last word."""

    near_id: str = ""
    near_similarity: float = 0.0
    story_id: str = ""
    story_score: float = 0.0
    evidence: str = ""


def decide(
    article: Probe,
    candidates: Mapping[str, Candidate],
    near_ids: Sequence[str],
    story_ids: Sequence[str],
    *,
    neardup_threshold: float,
    thresholds: stories.StoryThresholds,
    containment_threshold: float = 0.9,
) -> Decision:
    """The best same-article match, else the best same-story match, else nothing."""
    best_near: tuple[float, float, str, str] = (0.0, 0.0, "", "")
    # Story candidates are checked too: a truncated copy shares few bands (its Jaccard
    # is low) but all of its entities.
    for cid in dict.fromkeys([*near_ids, *story_ids]):
        candidate = candidates.get(cid)
        if candidate is None:
            continue
        shared, theirs = shingles_of.overlap(article.shingles, candidate.text)
        ours = len(article.shingles)
        similarity, contained = neardup.overlap_scores(shared, ours, theirs)
        same = similarity >= neardup_threshold or (
            contained >= containment_threshold and min(ours, theirs) >= MIN_CONTAINED_SHINGLES)
        if same and (similarity, contained) > best_near[:2]:
            best_near = (similarity, contained, cid,
                         f"jaccard={similarity:.2f} containment={contained:.2f}")
    if best_near[2]:
        return Decision(near_id=best_near[2], near_similarity=round(best_near[0], 3),
                        evidence=best_near[3])
    best: tuple[float, str, str] = (0.0, "", "")
    window = thresholds.window_hours
    for cid in story_ids:
        candidate = candidates.get(cid)
        when = parse_iso(candidate.published) if candidate else None
        if candidate is None or when is None:
            continue
        if abs((when - article.published).total_seconds()) > window * 3600:
            continue  # cheap check first: too far apart in time to be one story
        story = stories.StoryFeatures(candidate.text, names=candidate.names,
                                      figures=candidate.figures)
        match = stories.compare_if_possible(article.features, story, article.published,
                                            when, thresholds)
        if match and match.same and match.score > best[0]:
            best = (match.score, cid, match.evidence())
    if best[1]:
        return Decision(story_id=best[1], story_score=best[0], evidence=best[2])
    return Decision()
