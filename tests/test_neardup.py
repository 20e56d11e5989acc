"""The pure parts of dedup: shingles, MinHash bands, story features and the decision."""

from __future__ import annotations

import hashlib
import random
import re
import struct
import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newswire import neardup, stories
from newswire.dedup import (
    Candidate,
    RecentShingles,
    decide,
    probe,
)
from newswire.fingerprint import normalize_text
from newswire.stories import _STOPWORDS as STOPWORDS

PAGES = Path(__file__).parent / "data" / "pages"
T0 = datetime(2025, 2, 20, 11, 0, tzinfo=UTC)
TEXT = ("The leaders agreed on Thursday to hold new talks in Geneva next month.\n"
        "The French president told reporters in Paris that Emmanuel Macron would host them.")


def page(name: str) -> str:
    return (PAGES / f"{name}.expected.txt").read_text(encoding="utf-8")


def test_band_keys_are_pinned() -> None:
    # A change of these values is a change of shingling, hashing or banding: bump
    # MINHASH_VERSION so that old buckets are never matched by accident.
    assert neardup.bands_of(TEXT)[:3] == ["03ed90dbca1bf", "1b825d1d4a6d6", "276358efebe85"]
    assert len(neardup.bands_of(TEXT)) == neardup.BANDS
    assert neardup.bands_of("") == [] and neardup.bands_of(" ,. ") == []


@given(st.frozensets(st.integers(0, 2**64 - 1), min_size=1, max_size=300))
def test_a_band_key_is_its_band_s_rows_hashed(hashes: frozenset[int]) -> None:
    # Each band's four rows packed and hashed alone: what band_keys does in one pack.
    sig = neardup.signature(hashes)
    rows = neardup.ROWS
    assert neardup.band_keys(sig) == [
        f"{band:x}" + hashlib.blake2b(struct.pack(f"<{rows}Q", *sig[band * rows:(band + 1) * rows]),
                                      digest_size=6).hexdigest()
        for band in range(neardup.BANDS)]


def test_shingles_ignore_case_punctuation_and_paragraphs() -> None:
    assert neardup.shingles(TEXT.upper().replace("\n", "\n\n")) == neardup.shingles(TEXT)
    assert neardup.shingles("one two") == frozenset({neardup.shingle_hash("one two")})
    assert neardup.shingles("One, two three!") == frozenset({neardup.shingle_hash("one two three")})
    assert len(neardup.shingles("a b c d e")) == 3
    # Hashed as bytes: the same as hashing each joined shingle, letters beyond ASCII too.
    text = "Zürich’s \u00a0ﬁnance chief —\tÆrø Straße, 東京 ＡＢ 12½ İstanbul"
    words = normalize_text(text).split()
    assert len(words) == 12  # "½" is "1⁄2", "İ" a dotted "i"
    assert neardup.shingles(text) == {neardup.shingle_hash(" ".join(words[i:i + 3]))
                                      for i in range(len(words) - 2)}


def test_jaccard_and_containment() -> None:
    a, b = frozenset("abcd"), frozenset("cdef")
    assert neardup.jaccard(a, b) == 2 / 6
    assert neardup.containment(frozenset("ab"), a) == 1.0
    assert neardup.jaccard(frozenset(), a) == 0.0 == neardup.containment(a, frozenset())


def test_signature_estimates_jaccard() -> None:
    rng = random.Random(3)
    universe = [neardup.shingle_hash(f"w{i}") for i in range(4000)]
    errors = []
    for _ in range(30):
        shared = rng.sample(universe, 300)
        a = frozenset(shared + rng.sample(universe, 150))
        b = frozenset(shared + rng.sample(universe, 150))
        errors.append(abs(neardup.estimate(neardup.signature(a), neardup.signature(b))
                          - neardup.jaccard(a, b)))
    # 64 bins: the standard error is about 0.06; the mean error stays well under it.
    assert sum(errors) / len(errors) < 0.06


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta",
                                 "theta", "iota", "kappa"]), min_size=4, max_size=60))
def test_a_text_shares_all_bands_with_its_reformatted_self(words: list[str]) -> None:
    text = " ".join(words)
    assert neardup.bands_of(text) == neardup.bands_of(text.upper().replace(" ", "\n"))


def test_entities_skip_sentence_starts_and_function_words() -> None:
    found = stories.entities("The talks resumed. Officials met Vasseur in Paris. "
                             "In March, Paris said more.")
    assert set(found) == {"vasseur", "paris"}
    assert found["paris"] == 2  # the sentence-initial one counts: also seen mid-sentence


def _entities_word_by_word(text: str) -> Counter[str]:
    """entities() as plainly as it can be said: every word, in order (the oracle for
    the regex that skips the lower-case ones)."""
    mid: Counter[str] = Counter()
    initial: Counter[str] = Counter()
    for paragraph in unicodedata.normalize("NFKC", text).split("\n"):
        for match in re.finditer(r"[^\W\d_]+(?:['’][^\W\d_]+)?", paragraph):
            key = match.group().casefold().replace("’", "'").removesuffix("'s")
            if match.group()[0].isupper() and len(key) >= 2 and key not in STOPWORDS:
                before = paragraph[max(0, match.start() - 4): match.start()].rstrip(" “\"«‘'(")
                (initial if not before or before[-1] in ".!?:;" else mid)[key] += 1
    return mid + Counter({key: n for key, n in initial.items() if key in mid})


def test_entities_inside_words_with_apostrophes() -> None:
    assert set(stories.entities("Met d'Artagnan and O'Neill's rock'n'Roll band, Ébé and ébÉ.")) \
        == {"o'neill", "roll", "ébé"}  # not "artagnan": inside a word


#: The two scanning patterns of newswire.stories as their definitions read, with the
#: look-behind first (slower: the engine tries it at every position).
_CAPITALISED_AS_DEFINED = re.compile(
    r"(?<![^\W\d_])(?=[A-Z\u0080-\U0010ffff])[^\W\d_]+(?:['’][^\W\d_]+)?")
_NUMBER_AS_DEFINED = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([*"aAzZéÉßİıΣσǅⅫ²½٣'’ .\n,;:!?\"“(«-_19", "The ", "d'"]),
                max_size=80).map("".join), st.integers(0, 80))
def test_the_scanning_patterns_match_as_defined(text: str, at: int) -> None:
    for fast, defined in ((stories._CAPITALISED, _CAPITALISED_AS_DEFINED),
                          (stories._NUMBER, _NUMBER_AS_DEFINED)):
        assert [m.span() for m in fast.finditer(text)] == \
            [m.span() for m in defined.finditer(text)]
        # entities() searches on from inside a paragraph: what is before counts.
        found, expected = fast.search(text, at), defined.search(text, at)
        assert (found and found.span()) == (expected and expected.span())


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([*"aAzZéÉßİıΣσǅⅫ²½'’ .\n,;:!?\"“(«-_19", "The ", "d'"]),
                max_size=80).map("".join))
def test_entities_match_a_word_by_word_reading(text: str) -> None:
    assert stories.entities(text) == _entities_word_by_word(text)


def test_numbers_and_index_terms() -> None:
    assert stories.numbers("A €2.4 billion fund, 4,200 dockers, 19 countries, 30-day truce") \
        == frozenset({"2.4", "4200", "19", "30"})
    terms = stories.index_terms(page("mt-leaders-agree"))
    assert len(terms) == 16 and "e:ostrovsky" in terms and "n:2.4" in terms


def test_rewrite_scores_as_one_story_and_shape_4_does_not() -> None:
    original = stories.StoryFeatures(page("mt-leaders-agree"))
    rewrite = stories.compare(original, stories.StoryFeatures(page("rw-summit-rewrite")), T0,
                              T0 + timedelta(hours=5))
    related = stories.compare(original, stories.StoryFeatures(page("mt-macron-reengagement")), T0,
                              T0)  # even on the same day
    sanctions = stories.compare(original, stories.StoryFeatures(page("mt-sanctions-review")), T0,
                                T0 + timedelta(hours=20))
    assert rewrite.same and rewrite.shared_numbers >= 4 and rewrite.content > 0.5
    assert not related.same and related.score < rewrite.score - 0.2
    assert not sanctions.same
    late = stories.compare(original, stories.StoryFeatures(page("rw-summit-rewrite")), T0,
                           T0 + timedelta(days=4))
    assert not late.same and late.score == rewrite.score


def test_decide_prefers_the_same_article_over_the_same_story() -> None:
    article = probe("new", page("agg-leaders-agree") + "\nOriginal url: x", T0)
    candidates = {
        "orig": Candidate("orig", page("mt-leaders-agree"), "2025-02-20T11:05:00Z"),
        "rw": Candidate("rw", page("rw-summit-rewrite"), "2025-02-20T16:10:00Z"),
    }
    decision = decide(article, candidates, ["orig"], ["rw", "orig"], neardup_threshold=0.5,
                      thresholds=stories.StoryThresholds())
    assert decision.near_id == "orig" and decision.near_similarity > 0.9
    rewrite = probe("new", page("rw-summit-rewrite"), T0)
    decision = decide(rewrite, candidates, [], ["orig"], neardup_threshold=0.5,
                      thresholds=stories.StoryThresholds())
    assert decision.story_id == "orig" and not decision.near_id
    assert "entities=" in decision.evidence


def test_a_lead_paragraph_is_the_same_article_by_containment() -> None:
    full = page("mt-leaders-agree")
    lead = probe("lead", full.split("\n")[0], T0)
    candidates = {"full": Candidate("full", full, "2025-02-20T11:05:00Z")}
    decision = decide(lead, candidates, [], ["full"], neardup_threshold=0.5,
                      thresholds=stories.StoryThresholds())
    assert decision.near_id == "full" and "containment=1.00" in decision.evidence
    # A sentence in common is not enough: too short to be an article.
    line = probe("line", full.split(". ")[0], T0)
    assert not decide(line, candidates, [], ["full"], neardup_threshold=0.5,
                      thresholds=stories.StoryThresholds()).near_id


FIXTURES = ["mt-leaders-agree", "rw-summit-rewrite", "mt-macron-reengagement",
            "mt-sanctions-review", "tj-leaders-agree", "mt-ruble-steadies"]
PARAGRAPHS = [p for name in FIXTURES for p in page(name).splitlines() if p]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(PARAGRAPHS), min_size=1, max_size=6),
       st.lists(st.sampled_from(PARAGRAPHS), min_size=1, max_size=6),
       st.floats(min_value=0, max_value=200))
def test_story_comparison_is_symmetric(a: list[str], b: list[str], hours: float) -> None:
    fa, fb = stories.StoryFeatures("\n".join(a)), stories.StoryFeatures("\n".join(b))
    later = T0 + timedelta(hours=hours)
    assert stories.compare(fa, fb, T0, later) == stories.compare(fb, fa, later, T0)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(PARAGRAPHS), min_size=1, max_size=6),
       st.lists(st.sampled_from(PARAGRAPHS), min_size=1, max_size=6),
       st.floats(min_value=0, max_value=100))
def test_comparing_if_possible_skips_only_what_cannot_be_one_story(
    a: list[str], b: list[str], hours: float,
) -> None:
    fa, text = stories.StoryFeatures("\n".join(a)), "\n".join(b)
    later = T0 + timedelta(hours=hours)
    full = stories.compare(fa, stories.StoryFeatures(text), T0, later)
    staged = stories.compare_if_possible(stories.StoryFeatures("\n".join(a)),
                                         stories.StoryFeatures(text), T0, later)
    assert staged == full if staged else not full.same
    known = stories.StoryFeatures(text, names=frozenset(stories.entities(text)),
                                  figures=stories.numbers(text))
    assert stories.compare_if_possible(fa, known, T0, later) == staged


def test_comparing_if_possible_finds_the_rewrite_and_reads_no_content_words_of_another() -> None:
    original = stories.StoryFeatures(page("mt-leaders-agree"))
    rewrite = stories.compare_if_possible(original, stories.StoryFeatures(
        page("rw-summit-rewrite")), T0, T0 + timedelta(hours=5))
    assert rewrite is not None and rewrite.same
    original, other = (stories.StoryFeatures(page(n))
                       for n in ("mt-leaders-agree", "mt-ruble-steadies"))
    assert stories.compare_if_possible(original, other, T0, T0) is None
    assert "content" not in vars(other) and "content" not in vars(original)  # never found


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(PARAGRAPHS), min_size=3, max_size=6, unique=True))
def test_an_article_is_the_same_article_as_its_reformatted_self(paragraphs: list[str]) -> None:
    text = "\n".join(paragraphs)
    article = probe("b", text.upper().replace(". ", ".\n"), T0)
    decision = decide(article, {"a": Candidate("a", text, "2025-02-20T11:00:00Z")}, ["a"], [],
                      neardup_threshold=0.5, thresholds=stories.StoryThresholds())
    assert decision.near_id == "a" and decision.near_similarity == 1.0


def test_recent_shingles_are_the_texts_own_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [page(name) for name in FIXTURES[:3]]
    expected = [neardup.shingles(t) for t in texts]
    shingled: list[str] = []

    def shingles(text: str) -> frozenset[int]:
        shingled.append(text)
        return expected[texts.index(text)]

    monkeypatch.setattr(neardup, "shingles", shingles)
    recent = RecentShingles(2)
    assert [recent(t) for t in texts] == expected and shingled == texts
    assert recent(texts[2]) == expected[2] and recent(texts[1]) == expected[1]
    assert len(shingled) == 3  # both from their arrays
    assert recent(texts[0]) == expected[0] and len(shingled) == 4  # the oldest went
    ours = expected[0] | {1, 2, 3}
    assert recent.overlap(ours, texts[0]) == (len(expected[0]), len(expected[0]))  # its array
    assert recent.overlap(ours, texts[1]) == (len(ours & expected[1]), len(expected[1]))
    assert len(shingled) == 4
