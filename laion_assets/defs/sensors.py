"""The crawl-drop sensor: new WARC files in a watched location become shards and runs."""


import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from laion_assets.defs.jobs import shard_pipeline_job
from laion_assets.defs.partitions import SHARDS, shard_partitions
from laion_assets.defs.registration import shards_to_add
from laion_assets.defs.resources import CrawlDropsResource, DatasetStoreResource
from laion_assets.pipeline.drops import drop_fingerprint


@sensor(
    job=shard_pipeline_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the crawl drops location; registers each new WARC file run as a shard "
    "partition and requests one run per new shard (run key = shard key).",
)
def crawl_drop_sensor(
    context: SensorEvaluationContext,
    dataset_store: DatasetStoreResource,
    crawl_drops: CrawlDropsResource,
) -> SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    store = dataset_store.store()
    known = set(context.instance.get_dynamic_partitions(SHARDS))
    new_keys: list[str] = []
    for drop in crawl_drops.drops():
        fingerprint = drop_fingerprint(drop, crawl_drops.storage_options)
        if seen.get(drop.uri) == fingerprint:
            continue
        keys = shards_to_add(store, crawl_drops, drop, known | set(new_keys))
        context.log.info("drop %s (%s): %d new shards", drop.uri, drop.crawl, len(keys))
        new_keys.extend(keys)
        seen[drop.uri] = fingerprint
    return SensorResult(
        run_requests=[RunRequest(run_key=key, partition_key=key) for key in new_keys],
        dynamic_partitions_requests=(
            [shard_partitions.build_add_request(new_keys)] if new_keys else []
        ),
        cursor=json.dumps(seen, sort_keys=True),
    )
