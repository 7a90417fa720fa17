"""`extracted_pairs`: every `<img>` with alt text of a shard's HTML pages, with provenance."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AutomationCondition,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from laion_assets.defs.assets.warc_shards import STAGE as WARC_SHARDS
from laion_assets.defs.assets.warc_shards import warc_shards
from laion_assets.defs.metadata import column_schema, counts_table
from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import CrawlDropsResource, DatasetStoreResource
from laion_assets.pipeline.core.checks import duplicate_count, schema_problems
from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA
from laion_assets.pipeline.extract.stage import ExtractConfig, extract_shard
from laion_assets.pipeline.shards.drops import open_uri

STAGE = "extracted_pairs"
PAIRS_FILE = "pairs.parquet"
CAPTURES_FILE = "captures.parquet"
EXTRACTOR_VERSION = "1"


class ExtractPairsConfig(Config):
    """Extraction rules (LAION's defaults)."""

    min_alt_chars: int = Field(default=5, description="shorter alt texts are dropped")
    max_alt_chars: int = Field(default=2000, description="longer alt texts are dropped")
    drop_tracking_pixels: bool = Field(default=True, description="drop declared 1x1 images")
    max_page_bytes: int = Field(default=8 << 20, description="larger pages are skipped")


@asset(
    partitions_def=shard_partitions,
    deps=[warc_shards],
    group_name="crawl",
    kinds={"parquet"},
    owners=["team:dataset-builders"],
    metadata={"dagster/column_schema": column_schema(EXTRACTED_PAIRS_SCHEMA)},
    automation_condition=AutomationCondition.eager(),
    description="Every <img> with alt text in the shard's HTML responses: URL resolved and "
    "normalised, alt text normalised, language identified, deduplicated by pair_id within the "
    "shard, with WARC provenance (file, record offset, record id, page URL, capture time).",
    check_specs=[
        AssetCheckSpec("schema", asset="extracted_pairs",
                       description="columns and types are the extracted_pairs schema"),
        AssetCheckSpec("pair_id_unique", asset="extracted_pairs",
                       description="pair_id is unique within the shard"),
    ],
)
def extracted_pairs(
    context: AssetExecutionContext,
    config: ExtractPairsConfig,
    dataset_store: DatasetStoreResource,
    crawl_drops: CrawlDropsResource,
) -> MaterializeResult:
    store = dataset_store.store()
    shard = context.partition_key
    upstream = store.require_current(WARC_SHARDS, shard)
    rules = ExtractConfig(**config.model_dump())
    version = fingerprint(upstream["data_version"], EXTRACTOR_VERSION, rules.to_dict())
    fs_options = crawl_drops.storage_options
    with store.stage_output(STAGE, shard) as output:
        with output.open(PAIRS_FILE) as sink, output.open(CAPTURES_FILE) as captures:
            result = extract_shard(
                [f["uri"] for f in upstream["files"]], sink,
                open_file=lambda uri: open_uri(uri, fs_options), crawl=upstream["crawl"],
                shard=shard, config=rules, input_bytes=upstream["bytes"],
                captures_sink=captures, log=context.log.info,
            )
        manifest = output.commit({
            "shard": shard, "rows": result.rows, "file": output.file(PAIRS_FILE),
            "captures_file": output.file(CAPTURES_FILE),
            "stats": result.stats.to_dict(), "skips": result.skips, "config": rules.to_dict(),
            "data_version": version, "upstream_data_version": upstream["data_version"],
            "run_id": context.run.run_id,
        })
    path = manifest["file"]
    stats = result.stats.to_dict()
    pages = stats["counts"].get("html_pages", 0)
    context.log.info("shard %s: %d pages, %d pairs", shard, pages, result.rows)
    return MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "pages": pages,
            "pairs_per_page": MetadataValue.float(round(result.rows / pages, 3) if pages else 0.0),
            "candidates": stats["counts"].get("candidates", 0),
            "image_captures": stats["counts"].get("image_captures", 0),
            "dropped_by_reason": MetadataValue.md(counts_table(stats["dropped"], "reason")),
            "skipped_records": MetadataValue.md(counts_table(stats["skipped_records"], "reason")),
            "languages": MetadataValue.md(counts_table(stats["languages"], "language", 20)),
            "top_domains": MetadataValue.md(counts_table(stats["top_domains"], "domain", 20)),
            "path": MetadataValue.path(store.uri(path)),
        },
        data_version=DataVersion(version),
        check_results=_checks(store, path),
    )


def _checks(store, path: str) -> list[AssetCheckResult]:
    problems = schema_problems(store, path, EXTRACTED_PAIRS_SCHEMA)
    duplicates = duplicate_count(store, path, "pair_id")
    return [
        AssetCheckResult(check_name="schema", passed=not problems,
                         metadata={"problems": MetadataValue.json(problems)}),
        AssetCheckResult(check_name="pair_id_unique", passed=duplicates == 0,
                         metadata={"duplicates": duplicates}),
    ]
