"""Fingerprints: equal for reformatted copies, different for different texts, pinned."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from newswire.fingerprint import FINGERPRINT_VERSION, fingerprint, normalize_text

TEXT = (
    "The leaders agreed on Thursday to hold new talks in Geneva next month.\n"
    "\u201cWe have a window,\u201d the French president told reporters."
)


def test_pinned_value() -> None:
    # A change of this value is a change of normalization: bump FINGERPRINT_VERSION.
    assert fingerprint(TEXT) == "01c11401ca34fc9dc4a48aadfe35fd2fab"


def test_version_prefix() -> None:
    assert fingerprint("anything").startswith(f"{FINGERPRINT_VERSION:02x}")
    assert len(fingerprint("anything")) == 2 + 32
    int(fingerprint("anything"), 16)  # hex


def test_reformatting_does_not_change_it() -> None:
    variants = [
        TEXT.upper(),
        TEXT.replace("\n", "\n\n"),
        TEXT.replace(". ", ".\n"),  # a paragraph split in two
        TEXT.replace("\u201c", '"').replace("\u201d", '"'),
        TEXT.replace(" ", "\u00a0"),
        "   " + TEXT.replace(" ", "  \t") + "\n",
    ]
    for variant in variants:
        assert fingerprint(variant) == fingerprint(TEXT), variant


def test_a_changed_word_changes_it() -> None:
    assert fingerprint(TEXT.replace("Geneva", "Vienna")) != fingerprint(TEXT)


def test_normalize_text() -> None:
    assert normalize_text("  Hello,\u00a0WORLD!\n\n«Quoted» — text_here ") == (
        "hello world quoted text here"
    )


words = st.lists(st.text("abcdefghijklmnopqrstuvwxyzàéü", min_size=1, max_size=8), min_size=1,
                 max_size=30)
separators = st.lists(st.sampled_from([" ", "\n", "\n\n", "  ", "\t", ", ", ". ", " — "]),
                      min_size=30, max_size=30)


@given(words, separators, separators)
def test_invariant_under_separators_and_case(ws: list[str], a: list[str], b: list[str]) -> None:
    one = "".join(w + s for w, s in zip(ws, a, strict=False))
    two = "".join(w.upper() + s for w, s in zip(ws, b, strict=False))
    assert fingerprint(one) == fingerprint(two)


@given(st.text(max_size=200))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


@given(st.lists(st.text(max_size=40) | st.sampled_from(["\u0301", "\u1161", "ǅ", "ß", "\n"]),
                max_size=12).map("\n".join))
def test_normalized_line_by_line_as_the_whole_text_at_once(text: str) -> None:
    # normalize_text works a line at a time, with a cache; the oracle does the whole text
    # in one go (a combining mark or a Hangul vowel after a newline must not join the
    # line before).
    whole = re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()
    assert normalize_text(text) == whole


def test_long_lines_normalized_uncached_alike() -> None:
    line = "Ærø’s “ferry” — ＦＵＬＬ width, ﬁne; " * 300  # longer than the cached lines
    text = f"{line}\n\n{line.upper()}\n"
    whole = re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()
    assert len(line) > 4_000 and normalize_text(text) == whole
