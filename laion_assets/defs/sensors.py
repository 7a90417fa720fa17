"""Sensors: new WARC files become shards and runs; new takedowns become release versions."""


import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from laion_assets.defs.jobs import release_job, shard_pipeline_job
from laion_assets.defs.partitions import SHARDS, shard_partitions
from laion_assets.defs.registration import shards_to_add
from laion_assets.defs.resources import CrawlDropsResource, DatasetStoreResource
from laion_assets.pipeline.release.publish import new_entries_note, releases_behind_ledger
from laion_assets.pipeline.safety.takedowns import ledger_version, read_ledger
from laion_assets.pipeline.shards.drops import drop_fingerprint


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


@sensor(
    job=release_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the takedown ledger: when it holds entries that a release's latest "
    "version was not checked against, requests that release's next version with the same "
    "selection (run key = release name + ledger version).",
)
def takedown_sensor(context: SensorEvaluationContext,
                    dataset_store: DatasetStoreResource) -> SensorResult | SkipReason:
    store = dataset_store.store()
    entries = read_ledger(store)
    version = ledger_version(entries)
    requests = []
    for manifest in releases_behind_ledger(store, version):
        name = manifest.name
        # the parent's rows and source shards minus the removals: no shard of a newer crawl
        config = {**manifest.config, "notes": new_entries_note(entries, manifest),
                  "parent_version": manifest.version}
        requests.append(RunRequest(
            run_key=f"{name}@ledger:{version}",
            run_config={"ops": {"release": {"config": config}}},
            tags={"laion_assets/trigger": "takedown", "laion_assets/release": name}))
        context.log.info("release %s v%d predates ledger %s: requesting the next version",
                         name, manifest.version, version)
    if not requests:
        return SkipReason(f"every release is up to date with the ledger ({version})")
    return SensorResult(run_requests=requests)

