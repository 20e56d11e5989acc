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

Shingles are kept as their 64-bit xxh3 hashes, not as strings: sets of ints are
built and intersected faster, and two distinct shingles of one comparison collide
with odds of about 1e-14. The signature is *one-permutation* MinHash (Li, Owen and
Zhang, "One Permutation Hashing", NIPS 2012) with rotation densification
(Shrivastava and Li, ICML 2014) over those hashes: the top 6 bits put a shingle in
one of 64 bins, each bin keeps its minimum, an empty bin borrows from the next
non-empty one. It has the collision probability of classic MinHash at a 64th of
the hashing cost.

``MINHASH_VERSION`` is part of every band key: a change of shingling, hashing or
banding starts a new index instead of matching old buckets by accident.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from hashlib import blake2b
from typing import Any

import xxhash

from .fingerprint import normalize_text

MINHASH_VERSION = 2
SHINGLE_WORDS = 3
BANDS = 16
ROWS = 4
BINS = BANDS * ROWS
_EMPTY = 1 << 64
_SPAN_BITS = 64 - (BINS - 1).bit_length()  # BINS is a power of two
_SPAN = 1 << _SPAN_BITS
_LOW = _SPAN - 1
_PACK = struct.Struct(f"<{BINS}Q")
_BAND_BYTES = ROWS * 8


def shingle_hash(shingle: str) -> int:
    """The 64-bit hash a shingle is kept as."""
    return xxhash.xxh3_64_intdigest(shingle.encode("utf-8"))


def shingles(text: str, k: int = SHINGLE_WORDS) -> frozenset[int]:
    """The hashed word ``k``-shingles of the normalized text (the whole text when shorter)."""
    # Joined and hashed as UTF-8 bytes, with no Python call per shingle: the same
    # hashes as shingle_hash of the joined words (the normalized text has only
    # single ASCII spaces between words, and UTF-8 puts no space byte inside a letter).
    words = normalize_text(text).encode("utf-8").split()
    if len(words) <= k:
        return frozenset([xxhash.xxh3_64_intdigest(b" ".join(words))]) if words else frozenset()
    windows = zip(*(words[i:] for i in range(k)), strict=False)  # the shortest ends them
    return frozenset(map(xxhash.xxh3_64_intdigest, map(b" ".join, windows)))


def overlap_scores(shared: int, a: int, b: int) -> tuple[float, float]:
    """(Jaccard, containment) of two sets of ``a`` and ``b`` members that share
    ``shared``; (0, 0) when one is empty."""
    if not a or not b:
        return 0.0, 0.0
    return shared / (a + b - shared), shared / min(a, b)


def jaccard(a: frozenset[Any] | set[Any], b: frozenset[Any] | set[Any]) -> float:
    """|a ∩ b| / |a ∪ b| (0 for two empty sets)."""
    return overlap_scores(len(a & b), len(a), len(b))[0]


def containment(a: frozenset[Any] | set[Any], b: frozenset[Any] | set[Any]) -> float:
    """|a ∩ b| / min(|a|, |b|): how much of the shorter text the longer one contains."""
    return overlap_scores(len(a & b), len(a), len(b))[1]


def signature(hashes: Iterable[int]) -> tuple[int, ...]:
    """One-permutation MinHash of a set of shingle hashes: ``BINS`` values (empty set:
    all empty)."""
    bins = [_EMPTY] * BINS
    for h in hashes:
        b, low = h >> _SPAN_BITS, h & _LOW
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
    packed = _PACK.pack(*(v % (1 << 64) for v in sig))  # one pack; a band is a slice
    return [f"{band:x}{blake2b(packed[at:at + _BAND_BYTES], digest_size=6).hexdigest()}"
            for band, at in enumerate(range(0, BINS * 8, _BAND_BYTES))]


def bands_of(text: str) -> list[str]:
    """The LSH band keys of a text (empty for a text with no words)."""
    return band_keys(signature(shingles(text)))
