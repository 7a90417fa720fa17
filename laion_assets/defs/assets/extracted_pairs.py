"""`extracted_pairs`: every `<img>` with alt text of a shard's HTML pages, with provenance."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
)

from laion_assets.defs.assets.shard_asset import ShardRun, shard_asset
from laion_assets.defs.assets.warc_shards import warc_shards
from laion_assets.defs.library_fields import library_field
from laion_assets.defs.metadata import counts_table
from laion_assets.defs.resources import CrawlDropsResource, DatasetStoreResource
from laion_assets.pipeline.core.checks import duplicate_count, schema_problems
from laion_assets.pipeline.core.manifests import EXTRACTED_PAIRS as STAGE
from laion_assets.pipeline.core.manifests import ExtractedPairsManifest
from laion_assets.pipeline.extract import run as extract_stage
from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA
from laion_assets.pipeline.extract.stage import ExtractConfig
from laion_assets.pipeline.shards.drops import open_uri

__all__ = ["STAGE", "ExtractPairsConfig", "extracted_pairs"]


class ExtractPairsConfig(Config):
    """Extraction rules (LAION's defaults)."""

    min_alt_chars: int = library_field(ExtractConfig, "min_alt_chars",
                                       "shorter alt texts are dropped")
    max_alt_chars: int = library_field(ExtractConfig, "max_alt_chars",
                                       "longer alt texts are dropped")
    drop_tracking_pixels: bool = library_field(ExtractConfig, "drop_tracking_pixels",
                                               "drop declared 1x1 images")
    max_page_bytes: int = library_field(ExtractConfig, "max_page_bytes",
                                        "larger pages are skipped")


@shard_asset(
    deps=[warc_shards],
    group_name="crawl",
    kinds={"parquet"},
    schema=EXTRACTED_PAIRS_SCHEMA,
    description="Every <img> with alt text in the shard's HTML responses: URL resolved and "
    "normalised, alt text normalised, language identified, deduplicated by pair_id within the "
    "shard, with WARC provenance (file, record offset, record id, page URL, capture time).",
    check_specs=[
        AssetCheckSpec("schema", asset=STAGE,
                       description="columns and types are the extracted_pairs schema"),
        AssetCheckSpec("pair_id_unique", asset=STAGE,
                       description="pair_id is unique within the shard"),
    ],
)
def extracted_pairs(
    context: AssetExecutionContext,
    config: ExtractPairsConfig,
    dataset_store: DatasetStoreResource,
    crawl_drops: CrawlDropsResource,
) -> MaterializeResult:
    shard_run = ShardRun.of(context, dataset_store)
    options = crawl_drops.storage_options
    manifest = shard_run(extract_stage.run, ExtractConfig(**config.model_dump()),
                         open_file=lambda uri: open_uri(uri, options))
    return shard_run.result(manifest, _metadata(manifest), path=manifest.file,
                            check_results=_checks(shard_run, manifest))


def _metadata(manifest: ExtractedPairsManifest) -> dict:
    pages, rows = manifest.html_pages, manifest.rows
    return {
        "dagster/row_count": rows,
        "pages": pages,
        "pairs_per_page": MetadataValue.float(round(rows / pages, 3) if pages else 0.0),
        "candidates": manifest.image_candidates,
        "image_captures": manifest.image_captures,
        "dropped_by_reason": MetadataValue.md(
            counts_table(manifest.counter("dropped"), "reason")),
        "skipped_records": MetadataValue.md(
            counts_table(manifest.counter("skipped_records"), "reason")),
        "languages": MetadataValue.md(counts_table(manifest.counter("languages"), "language", 20)),
        "top_domains": MetadataValue.md(
            counts_table(manifest.counter("top_domains"), "domain", 20)),
    }


def _checks(shard_run: ShardRun, manifest: ExtractedPairsManifest) -> list[AssetCheckResult]:
    problems = schema_problems(shard_run.store, manifest.file, EXTRACTED_PAIRS_SCHEMA)
    duplicates = duplicate_count(shard_run.store, manifest.file, "pair_id")
    return [
        AssetCheckResult(check_name="schema", passed=not problems,
                         metadata={"problems": MetadataValue.json(problems)}),
        AssetCheckResult(check_name="pair_id_unique", passed=duplicates == 0,
                         metadata={"duplicates": duplicates}),
    ]
