"""The `extracted_pairs` stage: a shard's pairs and image captures, extracted and committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.core.manifests import (
    CAPTURES_FILE,
    EXTRACTED_PAIRS,
    PAIRS_FILE,
    ExtractedPairsManifest,
    WarcShardsManifest,
    commit,
    require_current,
)
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.extract.stage import ExtractConfig, extract_shard

EXTRACTOR_VERSION = "1"  # bump when the same WARC files and rules give different pairs


def data_version(upstream: WarcShardsManifest, config: ExtractConfig) -> str:
    return fingerprint(upstream.data_version, EXTRACTOR_VERSION, config.to_dict())


def run(store: DatasetStore, shard: str, config: ExtractConfig, *,
        open_file: Callable[[str], BinaryIO], run_id: str = "",
        log: Callable[[str], None] = print) -> ExtractedPairsManifest:
    """Extract the shard's WARC files (from its `warc_shards` manifest) and commit."""
    upstream = require_current(store, WarcShardsManifest, shard)
    with store.stage_output(EXTRACTED_PAIRS, shard) as output:
        with output.open(PAIRS_FILE) as sink, output.open(CAPTURES_FILE) as captures:
            result = extract_shard(
                upstream.uris, sink, open_file=open_file, crawl=upstream.crawl, shard=shard,
                config=config, input_bytes=upstream.bytes, captures_sink=captures, log=log)
        manifest = commit(output, ExtractedPairsManifest(
            shard=shard, rows=result.rows, file=output.file(PAIRS_FILE),
            captures_file=output.file(CAPTURES_FILE), stats=result.stats.to_dict(),
            skips=result.skips, config=config.to_dict(),
            data_version=data_version(upstream, config),
            upstream_data_version=upstream.data_version, run_id=run_id))
    log(f"shard {shard}: {manifest.html_pages} pages, {manifest.rows} pairs")
    return manifest
