"""`warc_shards`: which WARC files a shard holds, observed where they are (never copied)."""


from dagster import (
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import CrawlDropsResource, DatasetStoreResource
from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.shards.drops import load_shard, observe_files

STAGE = "warc_shards"


@asset(
    partitions_def=shard_partitions,
    group_name="crawl",
    kinds={"warc"},
    owners=["team:dataset-builders"],
    description="The raw WARC partitions: a shard's WARC files with sizes and sha256 "
    "checksums, observed in place (never copied).",
)
def warc_shards(
    context: AssetExecutionContext,
    dataset_store: DatasetStoreResource,
    crawl_drops: CrawlDropsResource,
) -> MaterializeResult:
    store = dataset_store.store()
    shard = load_shard(store, context.partition_key)
    files = observe_files(shard, crawl_drops.storage_options)
    version = fingerprint([f["sha256"] for f in files])
    total = sum(f["size"] for f in files)
    with store.stage_output(STAGE, shard.key) as output:
        output.commit({"shard": shard.key, "crawl": shard.crawl, "files": files,
                       "bytes": total, "data_version": version, "run_id": context.run.run_id})
    context.log.info("shard %s: %d WARC files, %d bytes", shard.key, len(files), total)
    table = "\n".join(f"| {f['uri']} | {f['size']:,} | `{f['sha256'][:16]}…` |" for f in files)
    return MaterializeResult(
        metadata={
            "warc_files": len(files),
            "bytes": MetadataValue.int(total),
            "files": MetadataValue.md("| file | bytes | sha256 |\n|---|---|---|\n" + table),
            "manifest": MetadataValue.path(store.uri(f"{STAGE}/{shard.key}/_CURRENT.json")),
        },
        data_version=DataVersion(version),
    )
