"""The seeded embeddings LAION's NSFW detectors were checked on against TensorFlow.

Shared by `scripts/convert_laion_heads.py` (which computes TensorFlow's outputs on them once)
and the tests (which regenerate them): numpy only, so both environments can import it.
`RandomState` is numpy's frozen stream, so the inputs are the same on every numpy version.
"""

from __future__ import annotations

import numpy as np

SEED, ROWS = 20240515, 1_000


def reference_embeddings(dim: int, categorical: dict[int, np.ndarray]) -> np.ndarray:
    """float32 [ROWS, dim] unit embeddings. In the second half, the detector's categorical
    columns hold values from its own vocabulary (the first half almost never does), so both
    the vocabulary lookup and the out-of-vocabulary index are exercised."""
    rng = np.random.RandomState(SEED + dim)
    x = rng.standard_normal((ROWS, dim))
    x /= np.sqrt((x * x).sum(axis=1, keepdims=True))
    half = ROWS // 2
    columns = sorted(categorical)
    for column in columns:
        vocabulary = np.sort(categorical[column].astype(np.float32))
        x[half:, column] = vocabulary[rng.randint(0, len(vocabulary), ROWS - half)]
    rest = np.setdiff1d(np.arange(dim), columns)
    taken = (x[half:, columns] ** 2).sum(axis=1, keepdims=True)
    left = np.sqrt(np.clip(1.0 - taken, 0.0, None))
    other = x[half:][:, rest]
    x[half:, rest] = other / np.sqrt((other * other).sum(axis=1, keepdims=True)) * left
    return x.astype(np.float32)  # vocabulary values are float32, so they survive exactly


def decode_keys(keys: np.ndarray) -> np.ndarray:
    """Vocabulary values from the head file's integer keys (2 * micro-units + sign bit)."""
    keys = keys.astype(np.int64)
    sign = np.where(keys & 1, -1.0, 1.0)
    return (sign * (keys >> 1) / 1e6).astype(np.float32)
