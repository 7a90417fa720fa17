"""The `clip_scored_pairs` stage: CLIP embeddings and similarity of a shard's fetched pairs."""

from __future__ import annotations

from collections.abc import Callable

from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.core.manifests import (
    CLIP_SCORED_PAIRS,
    EMBEDDING_FILES,
    ClipScoredPairsManifest,
    DownloadedImagesManifest,
    ExtractedPairsManifest,
    commit,
    require_current,
)
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.scoring.clip import ClipScorer
from laion_assets.pipeline.scoring.stage import score_shard


def run(store: DatasetStore, shard: str, scorer: ClipScorer, *, run_id: str = "",
        log: Callable[[str], None] = print) -> ClipScoredPairsManifest:
    """Score every pair of the shard whose image was fetched, and commit."""
    pairs_manifest = require_current(store, ExtractedPairsManifest, shard)
    images = require_current(store, DownloadedImagesManifest, shard)
    pairs = store.read_parquet(pairs_manifest.file, columns=["pair_id", "url", "text"])
    results = store.read_parquet(images.results_file, columns=["url_key", "status", "tar"])
    identity = scorer.identity.to_dict()
    version = fingerprint(images.data_version, pairs_manifest.data_version, identity)
    with store.stage_output(CLIP_SCORED_PAIRS, shard) as output:
        summary = score_shard(scorer, pairs, results, lambda name: store.open(images.path(name)),
                              output, log=log)
        manifest = commit(output, ClipScoredPairsManifest(
            shard=shard, rows=summary.rows, model=identity,
            failed_decodes=summary.failed_decodes, similarity_mean=summary.similarity_mean,
            histogram=summary.histogram, data_version=version,
            upstream_data_version=images.data_version,
            files={n: output.file(n) for n in EMBEDDING_FILES}, run_id=run_id))
    log(f"shard {shard}: {manifest.rows} pairs scored with {identity}")
    return manifest
