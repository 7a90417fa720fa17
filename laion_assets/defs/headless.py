"""Headless runs: register a drop's shards and materialize them on the configured instance.

The same registration as the sensor (`registration.shards_to_add`) and the same job the UI
backfills (`shard_pipeline`), executed in this process against the Dagster instance. Runs
carry this process's identity (`run_sweep.worker_tags`), and runs of CLI processes that died
are failed and their pool slots freed while `materialize` runs (`run_sweep.sweeping`).
"""

from dataclasses import dataclass

from dagster import DagsterInstance, Definitions

from laion_assets.defs.jobs import release_job, shard_pipeline_job
from laion_assets.defs.partitions import SHARDS
from laion_assets.defs.registration import shards_to_add
from laion_assets.defs.run_sweep import sweeping, worker_tags
from laion_assets.pipeline.shards.drops import DropError, list_drops, registered_shards

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass(frozen=True)
class ShardRun:
    shard: str
    run_id: str
    success: bool


def materialize_drop(
    drop_uri: str, defs: Definitions, instance: DagsterInstance, log=print
) -> list[ShardRun]:
    """Register the drop at `drop_uri` and run every per-shard asset for each of its shards."""
    crawl, keys, new = register_drop(drop_uri, defs, instance)
    log(f"{crawl}: {len(keys)} shards ({len(new)} newly registered)")
    job = defs.resolve_job_def(shard_pipeline_job.name)
    runs = []
    with sweeping(instance, log):  # runs of killed CLI processes: failed, their slots freed
        for key in keys:
            result = job.execute_in_process(partition_key=key, instance=instance,
                                            raise_on_error=False, run_config=QUIET_LOGS,
                                            tags={"laion_assets/trigger": "cli",
                                                  **worker_tags()})
            runs.append(ShardRun(key, result.run_id, result.success))
            for asset in _materialized(result):
                log(f"  {key}  {asset:<24} done")
            log(f"  {key}  {'ok' if result.success else 'FAILED'} (run {result.run_id[:8]})")
    return runs


def _materialized(result) -> list[str]:
    """The assets a run materialized, in the order it did."""
    names = []
    for event in result.get_asset_materialization_events():
        name = event.asset_key.to_user_string()
        if name not in names:
            names.append(name)
    return names


def register_drop(drop_uri: str, defs: Definitions, instance: DagsterInstance
                  ) -> tuple[str, list[str], list[str]]:
    """Register the drop's shards as partitions (as the sensor does), materializing nothing;
    (crawl, every shard key of the drop, the keys added now)."""
    resources = defs.resources
    crawl_drops, store = resources["crawl_drops"], resources["dataset_store"].store()
    drops = list_drops(drop_uri, crawl_drops.storage_options)
    if len(drops) != 1 or drops[0].uri.rstrip("/") != drop_uri.rstrip("/"):
        raise DropError(f"{drop_uri}: not a crawl drop (needs warc.paths(.gz) or *.warc.gz)")
    drop = drops[0]
    new = shards_to_add(store, crawl_drops, drop, set(instance.get_dynamic_partitions(SHARDS)))
    if new:
        instance.add_dynamic_partitions(SHARDS, new)
    return drop.crawl, [s.key for s in registered_shards(store, drop.crawl)], new


def cut_release(defs: Definitions, instance: DagsterInstance, config: dict | None = None,
                tags: dict | None = None) -> tuple[bool, str]:
    """Run `release_job` with `config` (ReleaseRunConfig fields); (success, run id)."""
    job = defs.resolve_job_def(release_job.name)
    run_config = {**QUIET_LOGS, "ops": {"release": {"config": config or {}}}}
    result = job.execute_in_process(instance=instance, run_config=run_config,
                                    raise_on_error=False,
                                    tags={"laion_assets/trigger": "cli", **worker_tags(),
                                          **(tags or {})})
    return result.success, result.run_id
