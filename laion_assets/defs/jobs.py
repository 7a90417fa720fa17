"""Jobs: the per-shard chain (the sensor's backfills, CLI and UI backfills) and cutting a
release."""

from dagster import (
    AssetSelection,
    ConfigMapping,
    Field,
    Permissive,
    define_asset_job,
)

from laion_assets.defs.assets.release import ReleaseRunConfig

# Every per-shard asset but the opt-in captions: the shard job's and the crawl-drop sensor's.
SHARD_CHAIN = AssetSelection.groups("crawl", "images", "scoring", "safety")

shard_pipeline_job = define_asset_job(
    "shard_pipeline",
    selection=SHARD_CHAIN,
    description="Every per-shard asset, from the raw WARC partition to its safety-filtered "
    "pairs.",
)

shard_cpu_stages_job = define_asset_job(
    "shard_cpu_stages",
    selection=AssetSelection.groups("crawl", "images"),
    description="The CPU stages of a shard: WARC partition, extraction, image download. "
    "Declarative automation then runs the GPU stage and the safety stage.",
)

shard_gpu_stage_job = define_asset_job(
    "shard_gpu_stage",
    selection=AssetSelection.groups("scoring"),
    description="CLIP scoring of a shard (the `gpu` pool, one at a time); safety follows.",
)


def _release_run_config(config: dict) -> dict:
    """The launchpad's config is the run config's own shape: passed on as it is."""
    return config


# The launchpad shows (and a run takes) the release selection and the log level only: the
# resources' settings (safety thresholds, lists, models) are the deployment's, not a run's.
RELEASE_LAUNCHPAD = ConfigMapping(
    config_fn=_release_run_config,
    config_schema={
        "ops": {"release": {"config": ReleaseRunConfig.to_config_schema().as_field()}},
        "loggers": Field(Permissive(), is_required=False,
                         description="e.g. console: {config: {log_level: INFO}}"),
    },
)

release_job = define_asset_job(
    "release_job",
    selection=AssetSelection.assets("release"),
    config=RELEASE_LAUNCHPAD,
    description="Publish the next version of a release (config: name, crawls, shards); the "
    "takedown sensor requests it when the ledger gains entries.",
)

shard_captions_job = define_asset_job(
    "shard_captions",
    selection=AssetSelection.assets("synthetic_captions"),
    description="Synthetic captions of a shard's fetched images (opt-in, the `gpu` pool); "
    "a re-run captions only images without captions from the same models.",
)
