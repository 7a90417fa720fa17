"""The `synthetic_captions` stage: caption a shard's fetched images, incrementally, and commit."""

from __future__ import annotations

from collections.abc import Callable

from laion_assets.pipeline.captions.generate import Captioner
from laion_assets.pipeline.captions.stage import CAPTIONS_FILE, caption_identity, caption_shard
from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.core.manifests import (
    SYNTHETIC_CAPTIONS,
    ClipScoredPairsManifest,
    DownloadedImagesManifest,
    SyntheticCaptionsManifest,
    commit,
    read_current,
    require_current,
)
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.scoring.clip import ClipScorer


def run(store: DatasetStore, shard: str, captioner: Captioner, ranker: ClipScorer, *,
        run_id: str = "", log: Callable[[str], None] = print
        ) -> SyntheticCaptionsManifest:
    """Caption every fetched image of the shard not yet captioned by the same models."""
    require_current(store, ClipScoredPairsManifest, shard)  # captions follow scoring
    images = require_current(store, DownloadedImagesManifest, shard)
    results = store.read_parquet(images.results_file, columns=["url_key", "status", "tar"])
    previous = read_current(store, SyntheticCaptionsManifest, shard)
    old = store.read_parquet(previous.file) if previous is not None else None
    identity = caption_identity(captioner, ranker)
    version = fingerprint(images.data_version, identity)
    with store.stage_output(SYNTHETIC_CAPTIONS, shard) as output:
        with output.open(CAPTIONS_FILE) as sink:
            summary = caption_shard(captioner, ranker, results,
                                    lambda name: store.open(images.path(name)), sink,
                                    previous=old, log=log)
        manifest = commit(output, SyntheticCaptionsManifest(
            shard=shard, rows=summary.rows, file=output.file(CAPTIONS_FILE),
            captioned=summary.captioned, carried_over=summary.carried_over,
            failed_decodes=summary.failed_decodes, caption_identity=identity,
            captioner=captioner.identity.to_dict(), ranker=ranker.identity.to_dict(),
            generation=captioner.config.to_dict(), data_version=version,
            upstream_data_version=images.data_version, run_id=run_id))
    log(f"shard {shard}: {manifest.rows} images with captions "
        f"({manifest.captioned} captioned now, {manifest.carried_over} kept)")
    return manifest
