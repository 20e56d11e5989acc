"""Boilerplate learned from the site itself. Pure functions; Redis keeps the counts.

A paragraph that recurs word for word on many pages of one site (its
registered domain) is the site's boilerplate, not an article's body: an appeal
no rule names, a standing disclaimer, a promotion. Every new article adds one
to the count of each of its paragraphs in ``{p}:site:<site>`` (in the commit
script, so a retried job or a copy of a page doesn't count twice), and every
article is checked against those counts before it is stored.

What it can't catch: boilerplate that changes from page to page (a "Read more"
line with each page's own headline: the line rules handle those), the first
pages of a site (a block must be seen on ``min_pages`` pages first), and
boilerplate that is one paragraph with the body (no paragraph break between).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence

from .fingerprint import normalize_text

#: Version of the block id below; part of the Redis key, so a change starts afresh.
BLOCK_VERSION = 1


def block_id(paragraph: str) -> str:
    """A short id of one paragraph's normalized words ('' for a paragraph without words)."""
    words = normalize_text(paragraph)
    if not words:
        return ""
    return hashlib.blake2b(words.encode("utf-8"), digest_size=8).hexdigest()


def block_ids(paragraphs: Sequence[str]) -> tuple[str, ...]:
    """The id of each paragraph, in order."""
    return tuple(block_id(p) for p in paragraphs)


def drop_learned(
    paragraphs: Sequence[str], blocks: Sequence[str], learned: Collection[str]
) -> tuple[str, ...]:
    """``paragraphs`` without those whose id (``blocks[i]``) is ``learned``: seen on
    at least ``min_pages`` other pages of the site.

    Copies of one article (an update at a new URL) don't add to the counts: the
    commit counts new stories only. An article all of whose paragraphs recur keeps
    them: it is a copy the dedup did not catch, and a copy with its text beats an
    empty one.
    """
    kept = tuple(p for p, block in zip(paragraphs, blocks, strict=True) if block not in learned)
    return kept or tuple(paragraphs)
