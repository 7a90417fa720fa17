"""Sensors: new WARC files become shards and one backfill per drop; new takedowns and list
changes become release versions."""


import json

from dagster import (
    DagsterInvariantViolationError,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

from laion_assets.defs.jobs import SHARD_CHAIN, release_job
from laion_assets.defs.partitions import SHARDS, shard_partitions
from laion_assets.defs.registration import shards_to_add
from laion_assets.defs.resources import (
    CrawlDropsResource,
    DatasetStoreResource,
    SafetyPolicyResource,
)
from laion_assets.pipeline.core.manifests import ReleaseManifest
from laion_assets.pipeline.release.behind import releases_behind_lists
from laion_assets.pipeline.release.publish import new_entries_note, releases_behind_ledger
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.takedowns import ledger_version, read_ledger
from laion_assets.pipeline.shards.drops import drop_fingerprint

TAKEDOWN_PRIORITY = 10  # takedown and list-change runs; shard runs and backfills have 0


@sensor(
    asset_selection=SHARD_CHAIN,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the crawl drops location; registers each new WARC file run as a shard "
    "partition and requests one backfill per drop over its new shards (every per-shard asset "
    "but the opt-in captions): one object to watch, retry (Failed and missing) and cancel.",
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
    backfills: list[RunRequest] = []
    for drop in crawl_drops.drops():
        fingerprint = drop_fingerprint(drop, crawl_drops.storage_options)
        if seen.get(drop.uri) == fingerprint:
            continue
        keys = shards_to_add(store, crawl_drops, drop, known | set(new_keys))
        context.log.info("drop %s (%s): %d new shards", drop.uri, drop.crawl, len(keys))
        if keys:
            backfills.append(drop_backfill(context, drop.crawl, keys))
        new_keys.extend(keys)
        seen[drop.uri] = fingerprint
    return SensorResult(
        run_requests=backfills,
        dynamic_partitions_requests=(
            [shard_partitions.build_add_request(new_keys)] if new_keys else []
        ),
        cursor=json.dumps(seen, sort_keys=True),
    )


def drop_backfill(context: SensorEvaluationContext, crawl: str, keys: list[str]) -> RunRequest:
    """One backfill of the shard chain's assets over a drop's new shards `keys`."""
    if context.repository_def is None:
        raise DagsterInvariantViolationError(
            "crawl_drop_sensor resolves its asset selection against the definitions: build its "
            "context with definitions= (build_sensor_context(definitions=defs))")
    assets = SHARD_CHAIN.resolve(context.repository_def.asset_graph)
    shards = shard_partitions.empty_subset().with_partition_keys(keys)
    subset = AssetGraphSubset(partitions_subsets_by_asset_key=dict.fromkeys(assets, shards))
    return RunRequest.for_asset_graph_subset(subset, tags={
        "laion_assets/trigger": "crawl_drop", "laion_assets/crawl": crawl,
        "laion_assets/shards": f"{keys[0]}..{keys[-1]} ({len(keys)})"})


@sensor(
    job=release_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the takedown ledger and the safety lists: when a release's latest "
    "version was not checked against the ledger's entries, or the hash lists, URL lists or "
    "opt-outs changed since and now match rows it holds, requests that release's next version "
    "from the same source shards (run key = release name + ledger or lists version), at a "
    f"higher dagster/priority ({TAKEDOWN_PRIORITY}) than shard runs.",
)
def takedown_sensor(context: SensorEvaluationContext, dataset_store: DatasetStoreResource,
                    safety_policy: SafetyPolicyResource) -> SensorResult:
    store = dataset_store.store()
    entries = read_ledger(store)
    version = ledger_version(entries)
    checked = json.loads(context.cursor) if context.cursor else {}
    changes, checked = releases_behind_lists(store, load_lists(store), safety_policy.policy(),
                                             checked)
    by_name = {change.manifest.name: change for change in changes}
    requests = []
    for manifest in releases_behind_ledger(store, version):
        change = by_name.pop(manifest.name, None)
        notes = [new_entries_note(entries, manifest)] + ([change.note] if change else [])
        key = f"{manifest.name}@ledger:{version}" + (f"+{change.run_key}" if change else "")
        requests.append(_next_version(manifest, key, notes, "takedown"))
        context.log.info("release %s v%d predates ledger %s: requesting the next version",
                         manifest.name, manifest.version, version)
    for change in by_name.values():
        requests.append(_next_version(change.manifest, change.run_key, [change.note],
                                      "list_change"))
        context.log.info("release %s: %s", change.manifest.name, change.note)
    cursor = json.dumps(checked, sort_keys=True)
    if not requests:
        return SensorResult(cursor=cursor, skip_reason=SkipReason(
            f"every release is up to date with the ledger ({version}) and the safety lists"))
    return SensorResult(run_requests=requests, cursor=cursor)


def _next_version(manifest: ReleaseManifest, run_key: str, notes: list[str],
                  trigger: str) -> RunRequest:
    """The next version of `manifest`'s release: its parent's rows minus what now matches."""
    # the parent's rows and shards: its selection (crawls, shards, subset) is not used again
    config = {"name": manifest.name, "notes": ". ".join(notes), "parent_version": manifest.version,
              "rows_per_part": int(manifest.config.get("rows_per_part", 1_000_000))}
    return RunRequest(run_key=run_key, run_config={"ops": {"release": {"config": config}}},
                      tags={"laion_assets/trigger": trigger,
                            "laion_assets/release": manifest.name,
                            "dagster/priority": str(TAKEDOWN_PRIORITY)})
