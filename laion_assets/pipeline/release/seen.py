"""Keys a release has already taken (pair ids, image digests), kept compactly for
cross-shard dedup at crawl scale: fixed-width numpy keys (8 bytes a pair id, 16 an image
digest) in a few sorted levels, each at least as large as the next, instead of Python sets
(~70 bytes an int, ~150 a hex digest). A lookup is one binary search per level; adding a
batch merges levels like a binary counter (O(log n) levels, each key merged O(log n) times).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xxhash

IMAGE_KEY = np.dtype("S16")
_NO_DIGEST = b"\xff" * 16  # the key of a missing digest (never an xxh3-128 in practice)


class SeenKeys:
    """A growing set of fixed-width keys (int64 or S16) with vectorised membership."""

    def __init__(self, dtype: np.dtype | str) -> None:
        self.dtype = np.dtype(dtype)
        self.levels: list[np.ndarray] = []  # each sorted and unique; sizes non-increasing

    def __len__(self) -> int:
        return sum(len(level) for level in self.levels)

    @property
    def nbytes(self) -> int:
        return sum(level.nbytes for level in self.levels)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Per key: whether it was added before."""
        keys = np.asarray(keys, self.dtype)
        order = np.argsort(keys)  # sorted queries: searchsorted walks each level once
        ordered = keys[order]
        hit = np.zeros(len(keys), bool)
        for level in self.levels:
            at = np.minimum(np.searchsorted(level, ordered), len(level) - 1)
            hit |= level[at] == ordered
        found = np.empty(len(keys), bool)
        found[order] = hit
        return found

    def add(self, keys: np.ndarray) -> None:
        """Add keys; callers add keys `contains` denies (a key added twice is still found,
        and kept once when its levels merge)."""
        new = _distinct(np.sort(np.asarray(keys, self.dtype)))
        if not len(new):
            return
        self.levels.append(new)
        while len(self.levels) > 1 and len(self.levels[-2]) <= len(self.levels[-1]):
            top, below = self.levels.pop(), self.levels.pop()
            merged = np.concatenate([below, top])
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            self.levels.append(_distinct(merged))


def _distinct(ordered: np.ndarray) -> np.ndarray:
    """A sorted array without repeats."""
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def image_keys(digests: Sequence[str | None]) -> np.ndarray:
    """16-byte keys of image digests (xxh3-128 of the string, exact up to 2^-128 a pair)."""
    digest = xxhash.xxh3_128_digest
    return np.array([_NO_DIGEST if d is None else digest(d.encode("utf-8")) for d in digests],
                    IMAGE_KEY)
