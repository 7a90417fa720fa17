"""`warc_shards`: which WARC files a shard holds, observed where they are (never copied)."""

import posixpath

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from laion_assets.defs.assets.shard_asset import ShardRun, shard_asset
from laion_assets.defs.resources import CrawlDropsResource, DatasetStoreResource
from laion_assets.pipeline.core.manifests import WARC_SHARDS as STAGE
from laion_assets.pipeline.core.store import CURRENT
from laion_assets.pipeline.shards import run as warc_shards_stage

__all__ = ["STAGE", "warc_shards"]


@shard_asset(
    group_name="crawl",
    kinds={"warc"},
    eager=False,
    description="The raw WARC partitions: a shard's WARC files with sizes and sha256 "
    "checksums, observed in place (never copied).",
)
def warc_shards(
    context: AssetExecutionContext,
    dataset_store: DatasetStoreResource,
    crawl_drops: CrawlDropsResource,
) -> MaterializeResult:
    shard_run = ShardRun.of(context, dataset_store)
    manifest = shard_run(warc_shards_stage.run, storage_options=crawl_drops.storage_options)
    table = "\n".join(f"| {f.uri} | {f.size:,} | `{(f.sha256 or '')[:16]}…` |"
                      for f in manifest.files)
    current = posixpath.join(STAGE, manifest.shard, CURRENT)
    return shard_run.result(manifest, {
        "warc_files": len(manifest.files),
        "bytes": MetadataValue.int(manifest.bytes),
        "files": MetadataValue.md("| file | bytes | sha256 |\n|---|---|---|\n" + table),
        "manifest": MetadataValue.path(shard_run.store.uri(current)),
    })
