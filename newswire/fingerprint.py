"""Fingerprints of article text: the exact-duplicate key.

Two texts get the same fingerprint when they differ only in case, Unicode
form, punctuation, quote style, whitespace or how the words are split into
paragraphs. The fingerprint is hex, prefixed with a two-digit version, so a
change of normalization can never silently match data stored under the old
one (the idea of reader's ``_hash_utils``).
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata

FINGERPRINT_VERSION = 1
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@functools.lru_cache(maxsize=4)  # the worker asks for one text's form twice in a row
def normalize_text(text: str) -> str:
    """Lower-case words of ``text`` separated by single spaces.

    NFKC folds compatibility forms (non-breaking spaces, full-width letters,
    ligatures); ``casefold`` is Unicode's caseless matching; every run of
    punctuation, symbols and whitespace becomes one space.

    Done line by line, each line's form cached: an article's text is its paragraphs
    joined by newlines, and the worker has just normalized each paragraph for its
    block id. The result is the same as of the whole text at once: a newline is a
    stable code point (NFKC changes nothing across it), ``casefold`` works character
    by character, and the newline is punctuation-and-whitespace like the spaces that
    join the lines' forms.
    """
    return " ".join(filter(None, map(_line_form, text.split("\n"))))


#: Lines up to this long are cached (a paragraph is); longer ones are not, so the
#: cache holds at most about 256 x 4,000 characters twice, key and form.
_CACHED_LINE_CHARS = 4_000


def _line_form(line: str) -> str:
    return _cached_line_form(line) if len(line) <= _CACHED_LINE_CHARS else _normalize(line)


def _normalize(line: str) -> str:
    folded = unicodedata.normalize("NFKC", line).casefold()
    return _NON_WORD.sub(" ", folded).strip()


_cached_line_form = functools.lru_cache(maxsize=256)(_normalize)


def fingerprint(text: str) -> str:
    """Versioned hex fingerprint of the normalized ``text``."""
    digest = hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).hexdigest()
    return f"{FINGERPRINT_VERSION:02x}{digest}"
