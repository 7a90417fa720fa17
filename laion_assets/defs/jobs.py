"""Jobs: the per-shard chain that the sensor, the CLI and UI backfills run."""

from dagster import AssetSelection, define_asset_job

from laion_assets.defs.partitions import shard_partitions

shard_pipeline_job = define_asset_job(
    "shard_pipeline",
    selection=AssetSelection.groups("crawl"),
    partitions_def=shard_partitions,
    description="Every per-shard asset, from the raw WARC partition to its extracted pairs.",
)
