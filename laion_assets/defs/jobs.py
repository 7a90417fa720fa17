"""Jobs: the per-shard chain that the sensor, the CLI and UI backfills run."""

from dagster import AssetSelection, define_asset_job

shard_pipeline_job = define_asset_job(
    "shard_pipeline",
    selection=AssetSelection.groups("crawl", "images", "scoring", "safety"),
    description="Every per-shard asset, from the raw WARC partition to its safety-filtered "
    "pairs.",
)
