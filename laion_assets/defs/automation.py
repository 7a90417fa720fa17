"""Declarative automation, on by default.

Every per-shard asset after `warc_shards` carries `AutomationCondition.eager()`, but Dagster
evaluates automation conditions only in an automation condition sensor, and the one it makes
by itself is stopped. This one is defined in code and running: when a run (any run: the CPU
job `shard_cpu_stages`, a backfill, the CLI) materializes a shard's upstream, the daemon
requests that shard's downstream stages, so `clip_scored_pairs` and then
`safety_filtered_pairs` follow on their own.
"""

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

PER_SHARD_GROUPS = ("crawl", "images", "scoring", "safety")

automation_sensor = AutomationConditionSensorDefinition(
    "shard_automation_sensor",
    target=AssetSelection.groups(*PER_SHARD_GROUPS),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Runs each shard's downstream stages (eager conditions) once their upstream "
    "is materialized, by whichever run.",
)
