"""Near-duplicates: the same article reformatted or lightly edited (level 1 of dedup).

Pure functions, no I/O. A text becomes a set of word 3-shingles of its normalized
form (:func:`newswire.fingerprint.normalize_text`, so case, quotes, whitespace and
paragraph breaks never matter); the set becomes a MinHash signature, the
signature becomes LSH band keys. Two texts whose shingle Jaccard is ``J`` share at
least one band with probability ``1 - (1 - J**r)**b``: with ``b = 16`` bands of
``r = 4`` rows that is 0.64 at J = 0.5, 0.99 at J = 0.7 and 0.008 at J = 0.15, so
copies meet in a bucket and different texts almost never do. Candidates found in
the buckets are then verified by their true Jaccard (:func:`jaccard` of the
shingle sets), so the estimate never decides alone.

The signature is *one-permutation* MinHash (Li, Owen and Zhang, "One Permutation
Hashing", NIPS 2012) with rotation densification (Shrivastava and Li, ICML 2014):
each shingle is hashed once and falls into one of 64 bins, each bin keeps its
minimum, an empty bin borrows from the next non-empty one. It has the collision
probability of classic MinHash at a 64th of the hashing cost, which keeps the
worker fast in pure Python.

``MINHASH_VERSION`` is part of every band key: a change of shingling, hashing or
banding starts a new index instead of matching old buckets by accident.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from .fingerprint import normalize_text

MINHASH_VERSION = 1
SHINGLE_WORDS = 3
BANDS = 16
ROWS = 4
BINS = BANDS * ROWS
_EMPTY = 1 << 64
_SPAN = (1 << 64) // BINS


def shingles(text: str, k: int = SHINGLE_WORDS) -> frozenset[str]:
    """Word ``k``-shingles of the normalized text (the whole text when shorter)."""
    words = normalize_text(text).split()
    if len(words) <= k:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i: i + k]) for i in range(len(words) - k + 1))


def jaccard(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    """|a ∩ b| / |a ∪ b| (0 for two empty sets)."""
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def containment(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    """|a ∩ b| / min(|a|, |b|): how much of the shorter text the longer one contains."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def signature(items: Iterable[str]) -> tuple[int, ...]:
    """One-permutation MinHash of a shingle set: ``BINS`` values (empty set: all empty)."""
    bins = [_EMPTY] * BINS
    blake2b, from_bytes = hashlib.blake2b, int.from_bytes
    for item in items:
        h = from_bytes(blake2b(item.encode("utf-8"), digest_size=8).digest(), "little")
        b = h // _SPAN
        if b >= BINS:  # the top sliver of the 64-bit range
            b = BINS - 1
        low = h - b * _SPAN
        if low < bins[b]:
            bins[b] = low
    if all(v == _EMPTY for v in bins):
        return tuple(bins)
    # Rotation densification: an empty bin takes the value of the next non-empty
    # bin to its right (wrapping), offset by the distance so it stays distinct.
    out = list(bins)
    for i in range(BINS):
        if bins[i] == _EMPTY:
            j, d = (i + 1) % BINS, 1
            while bins[j] == _EMPTY:
                j, d = (j + 1) % BINS, d + 1
            out[i] = bins[j] + d * _SPAN
    return tuple(out)


def estimate(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """The Jaccard estimate of two signatures: the share of equal bins."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / BINS


def band_keys(sig: tuple[int, ...]) -> list[str]:
    """One short hex key per band: equal for two signatures that agree on the band."""
    if all(v == _EMPTY for v in sig):
        return []
    keys = []
    for band in range(BANDS):
        rows = sig[band * ROWS: (band + 1) * ROWS]
        packed = struct.pack(f"<{ROWS}Q", *(v % (1 << 64) for v in rows))
        keys.append(f"{band:x}{hashlib.blake2b(packed, digest_size=6).hexdigest()}")
    return keys


def bands_of(text: str) -> list[str]:
    """The LSH band keys of a text (empty for a text with no words)."""
    return band_keys(signature(shingles(text)))
