"""End to end through `dagster dev`: a crawl drop becomes shards, the sensor's one backfill
materializes them.

The server (ui/conftest.py) is the real `dagster dev` with the repository's dagster.yaml and
workspace.yaml; everything here goes through its GraphQL API, the one the UI uses.
"""

import json

import yaml

from laion_assets_tests.ui.conftest import (
    CRAWL,
    GPU_POOL,
    LOCATION,
    PER_SHARD_ASSETS,
    REPOSITORY,
    SENSOR,
    SHARD_JOB,
    SHARD_KEYS,
    CrawlBackfill,
    DagsterDev,
)


def test_dagster_dev_loads_the_definitions_without_warnings(dagster_dev: DagsterDev):
    assert dagster_dev.load_warnings == [], (
        "dagster dev printed warnings while loading the definitions:\n"
        + "\n".join(dagster_dev.load_warnings))
    nodes = {"/".join(n["assetKey"]["path"]): n for n in dagster_dev.asset_nodes()}
    assert set(PER_SHARD_ASSETS) <= set(nodes), sorted(nodes)
    per_shard = dagster_dev.per_shard_assets()
    assert set(PER_SHARD_ASSETS) <= set(per_shard)
    # A backfill of the shard job (what the sensor runs too) covers every per-shard asset but
    # the opt-in synthetic captions (job shard_captions).
    assert "synthetic_captions" in per_shard
    assert dagster_dev.job_assets(SHARD_JOB) == sorted(set(per_shard) - {"synthetic_captions"})
    assert nodes["clip_scored_pairs"]["pools"] == [GPU_POOL]
    assert nodes["synthetic_captions"]["pools"] == [GPU_POOL]
    sensor = dagster_dev.sensor(SENSOR)
    assert sensor["sensorState"]["status"] == "RUNNING"
    assert sensor["minIntervalSeconds"] == 30


def test_gpu_pool_and_run_queue_come_from_dagster_yaml(dagster_dev: DagsterDev):
    instance = dagster_dev.pool(GPU_POOL)
    assert instance["poolConfig"] == {"poolGranularity": "op", "defaultPoolLimit": 1}
    assert instance["concurrencyLimit"]["limit"] == 1
    assert instance["runQueueConfig"]["maxConcurrentRuns"] == 4
    assert "dagster/backfill" in instance["runQueueConfig"]["tagConcurrencyLimitsYaml"]


def test_one_backfill_per_drop_materializes_every_shard(dagster_dev: DagsterDev,
                                                        crawl_backfill: CrawlBackfill):
    result = crawl_backfill
    assert result.shards == SHARD_KEYS
    assert set(PER_SHARD_ASSETS) <= set(result.assets)

    failed = [r for r in result.backfill_runs if r["status"] != "SUCCESS"]
    assert not failed, dagster_dev.failure_report(failed)

    backfill = result.backfill
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert backfill["isAssetBackfill"]
    tags = {t["key"]: t["value"] for t in backfill["tags"]}
    assert tags["dagster/sensor_name"] == SENSOR and tags["laion_assets/crawl"] == CRAWL
    assert sorted("/".join(a["path"]) for a in backfill["assetSelection"]) == result.assets
    statuses = {"/".join(s["assetKey"]["path"]): s
                for s in backfill["assetBackfillData"]["assetBackfillStatuses"]}
    assert sorted(statuses) == result.assets
    for asset, status in statuses.items():
        assert (status["numPartitionsTargeted"], status["numPartitionsMaterialized"],
                status["numPartitionsFailed"]) == (len(SHARD_KEYS), len(SHARD_KEYS), 0), asset

    # One run per shard, all from the sensor's one backfill.
    assert sorted(_partition(r) for r in result.backfill_runs) == SHARD_KEYS
    assert not [r for r in result.all_runs if _tag(r, "dagster/sensor_name") == SENSOR
                and r not in result.backfill_runs]

    backfill_run_ids = {r["runId"] for r in result.backfill_runs}
    for asset in result.assets:
        materialized = dagster_dev.materialized_partitions(asset)
        for shard in SHARD_KEYS:
            runs = set(materialized.get(shard, []))
            assert runs & backfill_run_ids, (
                f"{asset} {shard}: no materialization by the backfill {result.backfill_id} "
                f"(materialized by {sorted(runs)})")


def test_gpu_pool_runs_one_clip_step_at_a_time(crawl_backfill: CrawlBackfill):
    def clip_spans(runs):
        return sorted((step["startTime"], step["endTime"], run["runId"])
                      for run in runs for step in run["stepStats"]
                      if step["stepKey"] == "clip_scored_pairs")

    # The backfill's runs each score their shard...
    assert len(clip_spans(crawl_backfill.backfill_runs)) == len(SHARD_KEYS)
    # ...and no two CLIP steps of any runs (automation's included) overlapped.
    spans = clip_spans(crawl_backfill.all_runs)
    for (_, end, run_id), (start, _, next_run_id) in zip(spans, spans[1:], strict=False):
        assert end <= start, (f"clip_scored_pairs of runs {run_id} and {next_run_id} held the "
                              f"gpu pool at the same time")


def _partition(run: dict) -> str | None:
    return _tag(run, "dagster/partition")


def _tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


LAUNCHPAD = """
query Launchpad($selector: PipelineSelector!) {
  runConfigSchemaOrError(selector: $selector) {
    __typename
    ... on RunConfigSchema { rootDefaultYaml }
  }
}
"""


def test_the_release_launchpad_holds_the_selection_only(dagster_dev: DagsterDev):
    """What *Jobs* → release_job → *Launchpad* pre-fills: the release's config, no resources."""
    data = dagster_dev.graphql(LAUNCHPAD, {"selector": {
        "pipelineName": "release_job", "repositoryName": REPOSITORY,
        "repositoryLocationName": LOCATION}})["runConfigSchemaOrError"]
    assert data["__typename"] == "RunConfigSchema", data
    config = yaml.safe_load(data["rootDefaultYaml"])
    assert list(config) == ["ops"] and config["ops"]["release"]["config"]["name"]
    assert len(data["rootDefaultYaml"].splitlines()) < 20


def test_a_release_cut_from_the_launchpad(dagster_dev: DagsterDev, crawl_backfill: CrawlBackfill):
    """`release_job` with its config, as the launchpad sends it; then its manifest."""
    run = dagster_dev.launch_job_and_wait("release_job", run_config={"ops": {"release": {
        "config": {"name": "ui-release", "notes": "cut from the launchpad"}}}})
    folder = dagster_dev.var / "store" / "releases" / "ui-release" / "v0001"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run_id"] == run["runId"] and manifest["version"] == 1
    assert sorted(s["shard"] for s in manifest["source_shards"]) == SHARD_KEYS
    assert manifest["coverage"] == {"CC-MAIN-SAMPLE": {"known": 4, "included": 4}}
    assert manifest["rows"] == manifest["counts"]["released"] > 0
    assert "cut from the launchpad" in manifest["changelog"]
    for relative, facts in manifest["files"].items():
        assert (folder / relative).stat().st_size == facts["bytes"], relative
    checks = {c["name"]: c for c in dagster_dev.asset_checks("release")}
    assert set(checks) == {"files_match_manifest", "no_listed_rows", "coverage"}
    assert checks["no_listed_rows"]["blocking"]
    for name, check in checks.items():
        execution = check["executionForLatestMaterialization"]
        assert execution and execution["status"] == "SUCCEEDED", (name, execution)
        assert execution["runId"] == run["runId"]
