"""The `downloaded_images` stage: fetch a shard's unique image URLs (or keep earlier results)."""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from laion_assets.pipeline.core.manifests import (
    DOWNLOADED_IMAGES,
    RESULTS_FILE,
    DownloadedImagesManifest,
    ExtractedPairsManifest,
    commit,
    read_current,
    require_current,
)
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.download.replay import ReplaySource, index_from_tables
from laion_assets.pipeline.download.stage import DownloadConfig, Previous, download_shard
from laion_assets.pipeline.download.withhold import listed_bytes
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.shards.drops import parse_shard_key, registered_shards


def run(store: DatasetStore, shard: str, config: DownloadConfig, *,
        open_file: Callable[[str], BinaryIO], run_id: str = "",
        log: Callable[[str], None] = print) -> DownloadedImagesManifest:
    """Fetch every unique URL of the shard's pairs, keeping the previous attempt's successes
    and permanent failures, and commit; `open_file` opens a WARC file for replay."""
    pairs = require_current(store, ExtractedPairsManifest, shard)
    urls = store.read_parquet(pairs.file, columns=["url"]).column("url").to_pylist()
    withhold = listed_bytes(load_lists(store))  # a bad list fails here, before any write
    replay = replay_source(store, shard, open_file) if "replay" in config.sources else None
    try:
        with store.stage_output(DOWNLOADED_IMAGES, shard) as output:
            result = download_shard(urls, output, config=config, replay=replay,
                                    previous=previous(store, shard), withhold=withhold, log=log)
            return commit(output, DownloadedImagesManifest(
                shard=shard, rows=result.rows, results_file=output.file(RESULTS_FILE),
                tars=[output.file(t) for t in result.tars], ok=result.counts["ok"],
                failed=result.counts["failed"], failures=dict(result.failures),
                by_source=dict(result.by_source), sources=list(config.sources),
                bytes=result.bytes, urls=result.urls, kept=result.kept,
                fetched_this_run=result.fetched_this_run, data_version=result.fingerprint,
                upstream_data_version=pairs.data_version, run_id=run_id))
    finally:
        if replay is not None:
            replay.close()


def replay_source(store: DatasetStore, shard: str,
                  open_file: Callable[[str], BinaryIO]) -> ReplaySource:
    """The captures of every extracted shard of the crawl: a page's images may sit anywhere."""
    crawl, _ = parse_shard_key(shard)
    tables = []
    for other in registered_shards(store, crawl):
        manifest = read_current(store, ExtractedPairsManifest, other.key)
        if manifest is not None and manifest.captures_file:
            tables.append(store.read_parquet(manifest.captures_file))
    return ReplaySource(index_from_tables(tables), open_file)


def previous(store: DatasetStore, shard: str) -> Previous | None:
    """The shard's committed download, to keep its successes and permanent failures."""
    manifest = read_current(store, DownloadedImagesManifest, shard)
    if manifest is None:
        return None
    return Previous(store.read_parquet(manifest.results_file),
                    lambda name: store.open(manifest.path(name)))
