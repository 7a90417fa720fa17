"""The one `Definitions` of the laion_assets code location."""

from dagster import Definitions

from laion_assets.defs.assets.clip_scored_pairs import clip_scored_pairs
from laion_assets.defs.assets.downloaded_images import downloaded_images
from laion_assets.defs.assets.extracted_pairs import extracted_pairs
from laion_assets.defs.assets.knn_index import knn_index
from laion_assets.defs.assets.release import (
    coverage,
    files_match_manifest,
    no_listed_rows,
    release,
)
from laion_assets.defs.assets.safety_filtered_pairs import (
    no_listed_pair_passes,
    safety_filtered_pairs,
)
from laion_assets.defs.assets.synthetic_captions import synthetic_captions
from laion_assets.defs.assets.warc_shards import warc_shards
from laion_assets.defs.automation import automation_sensor
from laion_assets.defs.jobs import (
    release_job,
    shard_captions_job,
    shard_cpu_stages_job,
    shard_gpu_stage_job,
    shard_pipeline_job,
)
from laion_assets.defs.k8s import executor_from_environment
from laion_assets.defs.resources import (
    CaptionModelResource,
    ClipModelResource,
    CrawlDropsResource,
    DatasetStoreResource,
    ImageFetcherResource,
    SafetyPolicyResource,
)
from laion_assets.defs.run_sweep import dead_run_sensor
from laion_assets.defs.sensors import crawl_drop_sensor, takedown_sensor
from laion_assets.settings import Settings, from_environment


def build_definitions(settings: Settings,
                      safety_policy: SafetyPolicyResource | None = None) -> Definitions:
    """Definitions wired to `settings` (tests build their own; Dagster loads `defs`).

    `safety_policy` replaces the policy built from `settings` (all rules configurable).
    """
    return Definitions(
        assets=[warc_shards, extracted_pairs, downloaded_images, clip_scored_pairs,
                safety_filtered_pairs, synthetic_captions, release, knn_index],
        asset_checks=[no_listed_pair_passes, files_match_manifest, no_listed_rows, coverage],
        jobs=[shard_pipeline_job, shard_cpu_stages_job, shard_gpu_stage_job, shard_captions_job,
              release_job],
        sensors=[crawl_drop_sensor, takedown_sensor, automation_sensor, dead_run_sensor],
        executor=executor_from_environment(),  # in-process; k8s_job_executor when EXECUTOR=k8s
        resources=_resources(settings, safety_policy),
    )


def _resources(settings: Settings, safety_policy: SafetyPolicyResource | None) -> dict:
    """The resources: library defaults, with the overrides `settings` sets."""
    overrides = settings.resource_overrides()
    return {
        "dataset_store": DatasetStoreResource(root=settings.store,
                                              s3_endpoint=settings.s3_endpoint,
                                              **overrides.get("dataset_store", {})),
        "crawl_drops": CrawlDropsResource(location=settings.drops,
                                          s3_endpoint=settings.s3_endpoint,
                                          **overrides.get("crawl_drops", {})),
        "image_fetcher": ImageFetcherResource(**overrides.get("image_fetcher", {})),
        "clip_model": ClipModelResource(**overrides.get("clip_model", {})),
        "caption_model": CaptionModelResource(**overrides.get("caption_model", {})),
        "safety_policy": safety_policy or SafetyPolicyResource(
            **overrides.get("safety_policy", {})),
    }


defs = build_definitions(from_environment())
