"""`downloaded_images`: one fetch result per unique image URL, and the resized images."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
)

from laion_assets.defs.assets.extracted_pairs import extracted_pairs
from laion_assets.defs.assets.shard_asset import ShardRun, shard_asset
from laion_assets.defs.metadata import counts_table
from laion_assets.defs.resources import (
    CrawlDropsResource,
    DatasetStoreResource,
    ImageFetcherResource,
)
from laion_assets.pipeline.core.manifests import DOWNLOADED_IMAGES as STAGE
from laion_assets.pipeline.core.manifests import DownloadedImagesManifest
from laion_assets.pipeline.download import run as download_stage
from laion_assets.pipeline.download.stage import FETCH_RESULTS_SCHEMA
from laion_assets.pipeline.shards.drops import open_uri

__all__ = ["STAGE", "downloaded_images"]


@shard_asset(
    deps=[extracted_pairs],
    group_name="images",
    kinds={"webdataset", "parquet"},
    schema=FETCH_RESULTS_SCHEMA,
    description="One fetch result per unique image URL of the shard (status, reason, source, "
    "bytes, size, sha256, md5, PDQ) and the resized images as webdataset tars keyed by URL "
    "hash. Replays the drop's own WARC captures first, then the live web (config). A re-run "
    "keeps earlier successes and permanent failures; the counts describe every stored result.",
    check_specs=[AssetCheckSpec("one_result_per_url", asset=STAGE,
                                description="every unique URL of the shard has one result")],
)
def downloaded_images(
    context: AssetExecutionContext,
    dataset_store: DatasetStoreResource,
    crawl_drops: CrawlDropsResource,
    image_fetcher: ImageFetcherResource,
) -> MaterializeResult:
    shard_run = ShardRun.of(context, dataset_store)
    options = crawl_drops.storage_options
    manifest = shard_run(download_stage.run, image_fetcher.download_config(),
                         open_file=lambda uri: open_uri(uri, options))
    return shard_run.result(manifest, image_metadata(manifest), check_results=[
        AssetCheckResult(check_name="one_result_per_url", passed=manifest.rows == manifest.urls,
                         metadata={"urls": manifest.urls, "results": manifest.rows})])


def image_metadata(manifest: DownloadedImagesManifest) -> dict:
    """Counts of every stored result, and how many this run fetched or retried."""
    return {
        "dagster/row_count": manifest.rows,
        "ok": manifest.ok,
        "failed": manifest.failed,
        "failures_by_reason": MetadataValue.md(counts_table(manifest.failures, "reason")),
        "by_source": MetadataValue.md(counts_table(manifest.by_source, "source")),
        "bytes": MetadataValue.int(manifest.bytes),
        "tars": len(manifest.tars),
        "kept": manifest.kept,
        "fetched_this_run": manifest.fetched_this_run,
    }
