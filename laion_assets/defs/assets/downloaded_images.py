"""`downloaded_images`: one fetch result per unique image URL, and the resized images."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AutomationCondition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from laion_assets.defs.assets.extracted_pairs import STAGE as EXTRACTED_PAIRS
from laion_assets.defs.assets.extracted_pairs import extracted_pairs
from laion_assets.defs.metadata import column_schema, counts_table
from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import (
    CrawlDropsResource,
    DatasetStoreResource,
    ImageFetcherResource,
)
from laion_assets.pipeline.download.replay import ReplaySource, index_from_tables
from laion_assets.pipeline.download.stage import (
    FETCH_RESULTS_SCHEMA,
    RESULTS_FILE,
    Previous,
    download_shard,
)
from laion_assets.pipeline.shards.drops import open_uri, parse_shard_key, registered_shards

STAGE = "downloaded_images"


@asset(
    partitions_def=shard_partitions,
    deps=[extracted_pairs],
    group_name="images",
    kinds={"webdataset", "parquet"},
    owners=["team:dataset-builders"],
    metadata={"dagster/column_schema": column_schema(FETCH_RESULTS_SCHEMA)},
    automation_condition=AutomationCondition.eager(),
    description="One fetch result per unique image URL of the shard (status, reason, source, "
    "bytes, size, sha256, md5, PDQ) and the resized images as webdataset tars keyed by URL "
    "hash. Replays the drop's own WARC captures first, then the live web (config).",
    check_specs=[AssetCheckSpec("one_result_per_url", asset="downloaded_images",
                                description="every unique URL of the shard has one result")],
)
def downloaded_images(
    context: AssetExecutionContext,
    dataset_store: DatasetStoreResource,
    crawl_drops: CrawlDropsResource,
    image_fetcher: ImageFetcherResource,
) -> MaterializeResult:
    store = dataset_store.store()
    shard = context.partition_key
    pairs = store.require_current(EXTRACTED_PAIRS, shard)
    urls = store.read_parquet(pairs["file"], columns=["url"]).column("url").to_pylist()
    config = image_fetcher.download_config()
    replay = _replay_source(store, shard, crawl_drops) if "replay" in config.sources else None
    previous = _previous(store, shard)
    try:
        with store.stage_output(STAGE, shard) as output:
            result = download_shard(urls, output, config=config, replay=replay,
                                    previous=previous, log=context.log.info)
            version = result.fingerprint
            manifest = output.commit({
                "shard": shard, "rows": result.rows, "results_file": output.file(RESULTS_FILE),
                "tars": [output.file(t) for t in result.tars], "ok": result.counts["ok"],
                "failures": dict(result.failures), "by_source": dict(result.by_source),
                "sources": list(config.sources), "data_version": version,
                "upstream_data_version": pairs["data_version"], "run_id": context.run.run_id,
            })
    finally:
        if replay is not None:
            replay.close()
    unique = len(set(urls))
    return MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "ok": result.counts["ok"],
            "failed": result.counts["failed"],
            "failures_by_reason": MetadataValue.md(counts_table(dict(result.failures), "reason")),
            "by_source": MetadataValue.md(counts_table(dict(result.by_source), "source")),
            "bytes": MetadataValue.int(result.bytes),
            "tars": len(result.tars),
            "path": MetadataValue.path(store.uri(manifest["folder"])),
        },
        data_version=DataVersion(version),
        check_results=[AssetCheckResult(
            check_name="one_result_per_url",
            passed=result.rows == unique,
            metadata={"urls": unique, "results": result.rows})],
    )


def _replay_source(store, shard: str, crawl_drops: CrawlDropsResource) -> ReplaySource:
    """The captures of every extracted shard of the crawl: a page's images may sit anywhere."""
    crawl, _ = parse_shard_key(shard)
    tables = []
    for other in registered_shards(store, crawl):
        manifest = store.current(EXTRACTED_PAIRS, other.key)
        if manifest and manifest.get("captures_file"):
            tables.append(store.read_parquet(manifest["captures_file"]))
    options = crawl_drops.storage_options
    return ReplaySource(index_from_tables(tables), lambda uri: open_uri(uri, options))


def _previous(store, shard: str) -> Previous | None:
    manifest = store.current(STAGE, shard)
    if manifest is None:
        return None
    folder = manifest["folder"]
    return Previous(store.read_parquet(manifest["results_file"]),
                    lambda name: store.open(f"{folder}/{name}"))
