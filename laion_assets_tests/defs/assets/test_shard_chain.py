"""The per-shard chain (`warc_shards` → … → `clip_scored_pairs`) on a real Dagster instance."""

import gzip

import numpy as np
import pytest
from dagster import AssetKey

from laion_assets.defs.headless import materialize_drop
from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA

SHARD = "CC-MAIN-SAMPLE/00000"


@pytest.fixture
def materialized(defs, instance, drops_dir):
    (drops_dir / "CC-MAIN-SAMPLE" / "warc.paths.gz").write_bytes(gzip.compress(
        b"segments/1700000000000.00/warc/CC-MAIN-SAMPLE-20261121000000-00000.warc.gz\n"))
    runs = materialize_drop(str(drops_dir / "CC-MAIN-SAMPLE"), defs, instance, log=lambda _: None)
    assert [r.success for r in runs] == [True]
    return runs


def _latest(instance, asset: str, partition: str = SHARD):
    event = instance.get_latest_materialization_event(AssetKey(asset))
    records = instance.fetch_materializations(AssetKey(asset), limit=100).records
    matching = [r for r in records if r.asset_materialization.partition == partition]
    assert event is not None and matching
    return matching[0].asset_materialization


def test_the_shard_is_materialized_with_metadata(materialized, instance, defs):
    store = defs.resources["dataset_store"].store()
    raw = _latest(instance, "warc_shards")
    assert raw.metadata["warc_files"].value == 1
    pairs = _latest(instance, "extracted_pairs")
    meta = pairs.metadata
    manifest = store.require_current("extracted_pairs", SHARD)
    assert meta["dagster/row_count"].value == manifest["rows"] > 0
    assert meta["pages"].value == 12
    assert "| alt_too_short |" in meta["dropped_by_reason"].value
    assert "| en |" in meta["languages"].value
    assert meta["path"].value == store.uri(manifest["file"])
    assert pairs.tags["dagster/data_version"] == manifest["data_version"]
    table = store.read_parquet(manifest["file"])
    assert table.schema.names == EXTRACTED_PAIRS_SCHEMA.names
    assert set(table.column("shard").to_pylist()) == {SHARD}
    assert set(table.column("crawl").to_pylist()) == {"CC-MAIN-SAMPLE"}


def test_images_are_replayed_and_scored(materialized, instance, defs):
    store = defs.resources["dataset_store"].store()
    pairs = store.read_parquet(store.require_current("extracted_pairs", SHARD)["file"])
    images = store.require_current("downloaded_images", SHARD)
    results = store.read_parquet(images["results_file"])
    assert results.num_rows == len(set(pairs.column("url").to_pylist()))
    assert set(results.column("source").to_pylist()) <= {"replay", None}
    assert images["ok"] == results.column("status").to_pylist().count("ok") > 0
    scored = store.require_current("clip_scored_pairs", SHARD)
    assert scored["model"]["pretrained"] == "none"
    assert scored["model"]["weights_sha256"] == "untrained"
    ids = store.read_parquet(scored["files"]["ids.parquet"])
    emb = np.load(store.path(scored["files"]["img_emb.npy"]))
    assert emb.dtype == np.float16 and emb.shape == (ids.num_rows, 512) == (scored["rows"], 512)
    ok_urls = {u for u, s in zip(results.column("url").to_pylist(),
                                 results.column("status").to_pylist(), strict=True) if s == "ok"}
    expected = {p for p, u in zip(pairs.column("pair_id").to_pylist(),
                                  pairs.column("url").to_pylist(), strict=True) if u in ok_urls}
    assert set(ids.column("pair_id").to_pylist()) == expected
    meta = _latest(instance, "clip_scored_pairs").metadata
    assert meta["model"].value["model"] == "ViT-B-32"
    assert "| cosine | pairs |" in meta["similarity_histogram"].value


def test_asset_checks_pass(materialized, instance):
    for check in ("schema", "pair_id_unique"):
        records = instance.event_log_storage.get_asset_check_execution_history(
            _check_key(check), limit=10)
        assert records and all(r.evaluation.passed for r in records if r.evaluation)


def test_rematerializing_replaces_and_a_failure_keeps_the_old_output(
    materialized, defs, instance, drops_dir
):
    store = defs.resources["dataset_store"].store()
    before = store.require_current("extracted_pairs", SHARD)
    job = defs.resolve_job_def("shard_pipeline")
    crawl_stage = [AssetKey("warc_shards"), AssetKey("extracted_pairs")]
    assert job.execute_in_process(partition_key=SHARD, instance=instance,
                                  asset_selection=crawl_stage).success
    after = store.require_current("extracted_pairs", SHARD)
    assert after["attempt"] != before["attempt"]
    assert after["data_version"] == before["data_version"]  # same input, same rules
    assert after["file"] != before["file"] and store.exists(after["file"])
    # the superseded attempt stays for the store's GC grace period (a reader may hold it)
    assert store.exists(before["file"])
    warc = next((drops_dir / "CC-MAIN-SAMPLE").glob("segments/*/warc/*-00000.warc.gz"))
    warc.unlink()
    failed = job.execute_in_process(partition_key=SHARD, instance=instance, raise_on_error=False,
                                    asset_selection=crawl_stage)
    assert not failed.success
    errors = [str(e.event_specific_data.error.to_string()) for e in failed.all_events
              if e.event_type_value == "STEP_FAILURE"]
    assert any("WARC file missing" in m and warc.name in m for m in errors), errors
    assert store.require_current("extracted_pairs", SHARD) == after


def _check_key(name: str):
    from dagster import AssetCheckKey

    return AssetCheckKey(AssetKey("extracted_pairs"), name)
