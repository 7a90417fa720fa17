"""The scoring stage: every pair whose image was fetched, scored by CLIP, embeddings written.

Pairs are joined to the fetched images by URL key and fed tar by tar, so at most one tar of
images is in memory; a URL shared by several pairs is decoded once per pair (different
texts). No threshold is applied here: the safety stage decides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from laion_assets.pipeline.formats.embeddings import EmbeddingWriter, Folder
from laion_assets.pipeline.formats.webdataset import iter_tar_images, url_key
from laion_assets.pipeline.scoring.clip import ClipScorer, Item

HISTOGRAM_BINS = np.linspace(-0.1, 0.5, 13)


@dataclass
class ScoreSummary:
    rows: int
    failed_decodes: int
    similarity_mean: float | None
    histogram: list[tuple[float, float, int]]  # (low, high, count); outer bins are open-ended


def scoring_plan(pairs: pa.Table, results: pa.Table) -> tuple[dict[str, list], dict[str, list]]:
    """(tar → url keys in it, url key → [(pair_id, text)]) for pairs with a fetched image."""
    ok = results.filter(pa.compute.equal(results.column("status"), "ok"))
    tar_of = dict(zip(ok.column("url_key").to_pylist(), ok.column("tar").to_pylist(),
                      strict=True))
    by_key: dict[str, list] = defaultdict(list)
    for pid, url, text in zip(pairs.column("pair_id").to_pylist(),
                              pairs.column("url").to_pylist(),
                              pairs.column("text").to_pylist(), strict=True):
        key = url_key(url)
        if key in tar_of:
            by_key[key].append((pid, text))
    keys_by_tar: dict[str, list] = defaultdict(list)
    for key in by_key:
        keys_by_tar[tar_of[key]].append(key)
    return keys_by_tar, by_key


def iter_items(keys_by_tar: dict[str, list], by_key: dict[str, list],
               open_tar: Callable[[str], BinaryIO]) -> Iterator[Item]:
    """(pair_id, image bytes, text) for every planned pair, in tar order."""
    for tar in sorted(keys_by_tar):
        with open_tar(tar) as handle:
            for key, image, _ in iter_tar_images(handle):
                for pid, text in by_key.get(key, ()):
                    yield pid, image, text


def score_shard(
    scorer: ClipScorer, pairs: pa.Table, results: pa.Table,
    open_tar: Callable[[str], BinaryIO], output: Folder,
    log: Callable[[str], None] | None = None, log_every: int = 50,
) -> ScoreSummary:
    """Score every pair with a fetched image and write embeddings + ids to `output`.

    `log` gets a progress line every `log_every` batches.
    """
    keys_by_tar, by_key = scoring_plan(pairs, results)
    count = sum(len(v) for v in by_key.values())
    similarities = []
    failed = 0
    with EmbeddingWriter(output, count, scorer.identity.embed_dim) as writer:
        for number, batch in enumerate(scorer.score(iter_items(keys_by_tar, by_key, open_tar)), 1):
            writer.write(batch)
            if log is not None and number % log_every == 0:
                log(f"{writer.rows}/{count} pairs scored")
            similarities.append(batch.similarity[batch.ok])
            failed += int((~batch.ok).sum())
    values = np.concatenate(similarities) if similarities else np.zeros(0, np.float32)
    return ScoreSummary(count, failed, float(values.mean()) if len(values) else None,
                        histogram(values))


NICE_STEPS = (1, 2, 2.5, 5)


def histogram(values: np.ndarray, bins: np.ndarray | None = None
              ) -> list[tuple[float, float, int]]:
    """Counts of finite values per bin (first and last bins take everything beyond them);
    without `bins`, bins that fit the values (`fitted_bins`)."""
    values = values[np.isfinite(values)]
    bins = fitted_bins(values) if bins is None else bins
    clipped = np.clip(values, bins[0], bins[-1] - 1e-9)
    counts, edges = np.histogram(clipped, bins=bins)
    return [(_edge(lo), _edge(hi), int(n))
            for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)]


def fitted_bins(values: np.ndarray, most: int = 12) -> np.ndarray:
    """At most `most` bins of a round width (1, 2, 2.5 or 5 times a power of ten) on round
    edges covering every value; HISTOGRAM_BINS when there are none."""
    if not len(values):
        return HISTOGRAM_BINS
    low, high = float(values.min()), float(values.max())
    span = max(high - low, 1e-2)
    scale = 10.0 ** np.floor(np.log10(span / most))
    step = next(m * scale for m in (*NICE_STEPS, 10) if span / (m * scale) <= most - 1)
    start = np.floor(low / step) * step
    count = int(np.floor((high - start) / step)) + 1
    return start + step * np.arange(count + 1)


def _edge(value: float) -> float:
    """An edge rounded for display, never -0.0."""
    return round(float(value), 4) + 0.0
