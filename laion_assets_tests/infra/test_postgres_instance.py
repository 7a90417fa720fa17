"""`infra/dagster-postgres.yaml` against a real PostgreSQL server: a backfill of the sample
drop's shards runs on that instance, and its runs, materializations and shards are in Postgres."""

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from laion_assets.defs.headless import materialize_drop
from laion_assets.defs.partitions import SHARDS

ROOT = Path(__file__).resolve().parents[2]
PG_CONFIG = ROOT / "infra" / "dagster-postgres.yaml"
SHARD_KEYS = [f"CC-MAIN-SAMPLE/{i:05d}" for i in range(4)]


def test_postgres_config_keeps_the_repository_instance_settings():
    """Everything but storage is the root dagster.yaml's (run queue, pools, telemetry)."""
    postgres = yaml.safe_load(PG_CONFIG.read_text())
    local = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert set(postgres["storage"]) == {"postgres"}
    assert {k: v for k, v in postgres.items() if k != "storage"} == {
        k: v for k, v in local.items() if k not in ("storage", "run_storage",
                                                    "event_log_storage", "schedule_storage")
    }


@pytest.fixture
def postgres_home(tmp_path, monkeypatch, postgres_server) -> Path:
    """A DAGSTER_HOME with infra/dagster-postgres.yaml, its env vars naming a fresh database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PG_CONFIG, home / "dagster.yaml")
    database = postgres_server.create_database("dagster_" + tmp_path.name.replace("-", "_")[-40:])
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in {"HOST": postgres_server.host, "PORT": str(postgres_server.port),
                        "USER": postgres_server.user, "PASSWORD": postgres_server.password,
                        "DB": database}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)
    return home


def test_backfill_on_postgres_instance(postgres_home, postgres_server, defs, drops_dir):
    instance = DagsterInstance.get()
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        runs = materialize_drop(str(drops_dir / "CC-MAIN-SAMPLE"), defs, instance,
                                log=lambda *_: None)
        assert [r.shard for r in runs] == SHARD_KEYS
        assert all(r.success for r in runs), runs
    finally:
        instance.dispose()

    # What Postgres holds, read with SQL, not through Dagster: every asset of the job, per shard.
    assets = sorted(k.to_user_string()
                    for k in defs.resolve_job_def("shard_pipeline").asset_layer.selected_asset_keys)
    assert {"warc_shards", "extracted_pairs", "downloaded_images", "clip_scored_pairs"} <= set(
        assets)
    run_ids = {r.run_id for r in runs}
    conn = postgres_server.connect(dbname=os.environ["DAGSTER_PG_DB"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT run_id, pipeline_name, status FROM runs")
            rows = cur.fetchall()
            assert {r[0] for r in rows} == run_ids
            assert {(r[1], r[2]) for r in rows} == {("shard_pipeline", "SUCCESS")}
            cur.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
                        (SHARDS,))
            assert sorted(r[0] for r in cur.fetchall()) == SHARD_KEYS
            cur.execute("SELECT asset_key, partition, run_id FROM event_logs "
                        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
            materializations = cur.fetchall()
            assert sorted((json.loads(k)[0], p) for k, p, _ in materializations) == sorted(
                (a, s) for a in assets for s in SHARD_KEYS)
            assert {r for _, _, r in materializations} == run_ids
            cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = "
                        "'ASSET_CHECK_EVALUATION'")
            assert cur.fetchone()[0] > 0
            cur.execute("SELECT asset_key FROM asset_keys")
            assert {json.loads(r[0])[0] for r in cur.fetchall()} >= set(assets)
    finally:
        conn.close()

    # A second instance from the same config (another process would do the same) sees it all.
    reopened = DagsterInstance.from_config(str(postgres_home))
    try:
        assert reopened.get_runs_count() == 4
        assert {r.status for r in reopened.get_runs()} == {DagsterRunStatus.SUCCESS}
        assert set(reopened.get_dynamic_partitions(SHARDS)) == set(SHARD_KEYS)
        for asset in assets:
            assert reopened.get_materialized_partitions(AssetKey(asset)) == set(SHARD_KEYS)
    finally:
        reopened.dispose()

