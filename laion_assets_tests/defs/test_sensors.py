import gzip
import json
import shutil

import pyarrow.parquet as pq
import pytest
from dagster import (
    DagsterInvariantViolationError,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.execution.backfill import PartitionBackfill

from laion_assets.defs.headless import cut_release
from laion_assets.defs.partitions import SHARDS
from laion_assets.defs.sensors import crawl_drop_sensor, takedown_sensor
from laion_assets.pipeline.release.publish import latest_release
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.takedowns import append, new_takedown
from laion_assets_tests.chains import backfill_of, materialize_sample_shards, tick_crawl_sensor
from laion_assets_tests.conftest import SHARED_WARCS

SHARD_CHAIN_ASSETS = {"warc_shards", "extracted_pairs", "downloaded_images",
                      "clip_scored_pairs", "safety_filtered_pairs"}


def _backfill(result) -> tuple[set[str], list[str]]:
    """The assets and shard keys of the one backfill a tick requested."""
    [request] = result.run_requests
    return backfill_of(request)


def test_new_drop_yields_shards_and_one_backfill(instance, defs):
    result = tick_crawl_sensor(instance, defs, None)
    keys = [f"CC-MAIN-SAMPLE/{i:05d}" for i in range(4)]
    assets, shards = _backfill(result)
    assert assets == SHARD_CHAIN_ASSETS  # not the opt-in synthetic_captions
    assert shards == keys
    [request] = result.run_requests
    assert request.tags["laion_assets/crawl"] == "CC-MAIN-SAMPLE"
    assert request.tags["laion_assets/trigger"] == "crawl_drop"
    assert sorted(instance.get_dynamic_partitions(SHARDS)) == keys
    assert list(json.loads(result.cursor)) == [str(defs.resources["crawl_drops"].location)
                                                + "/CC-MAIN-SAMPLE"]


# Dagster's own check of a backfill request calls its deprecated AssetSelection.keys.
@pytest.mark.filterwarnings("ignore:Function `AssetSelection.keys` is deprecated")
def test_the_daemon_accepts_the_backfill_and_records_it(instance, defs):
    """The tick as the sensor daemon evaluates it (selection checked), and the backfill it
    stores: one asset backfill over every new shard."""
    context = build_sensor_context(instance=instance, resources=defs.resources,
                                   definitions=defs)
    data = crawl_drop_sensor.evaluate_tick(context)
    [request] = data.run_requests
    assert request.tags["dagster/sensor_name"] == "crawl_drop_sensor"
    for partitions in data.dynamic_partitions_requests:
        instance.add_dynamic_partitions(partitions.partitions_def_name,
                                        list(partitions.partition_keys))
    instance.add_backfill(PartitionBackfill.from_asset_graph_subset(
        backfill_id="drop", asset_graph_subset=request.asset_graph_subset,
        dynamic_partitions_store=instance, tags=request.tags, backfill_timestamp=0.0,
        title=None, description=None, run_config=None))
    backfill = instance.get_backfill("drop")
    assert backfill.is_asset_backfill
    target = backfill.asset_backfill_data.target_subset
    assert {k.to_user_string() for k in target.asset_keys} == SHARD_CHAIN_ASSETS
    assert target.num_partitions_and_non_partitioned_assets == 4 * len(SHARD_CHAIN_ASSETS)
    assert backfill.tags["laion_assets/crawl"] == "CC-MAIN-SAMPLE"


def test_a_tick_without_definitions_fails_clearly(instance, defs):
    context = build_sensor_context(instance=instance, resources=defs.resources)
    with pytest.raises(DagsterInvariantViolationError, match="definitions="):
        crawl_drop_sensor(context)


def test_same_drop_again_yields_nothing(instance, defs):
    first = tick_crawl_sensor(instance, defs, None)
    again = tick_crawl_sensor(instance, defs, first.cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []
    # even with the cursor lost, the registry keeps shards from being added twice
    fresh = tick_crawl_sensor(instance, defs, None)
    assert fresh.run_requests == []


def test_one_added_file_yields_a_backfill_of_one_shard(instance, defs, drops_dir):
    first = tick_crawl_sensor(instance, defs, None)
    drop = drops_dir / "CC-MAIN-SAMPLE"
    shutil.copy(SHARED_WARCS / "wget-2024-sample.warc.gz", drop / "extra.warc.gz")
    listing = gzip.decompress((drop / "warc.paths.gz").read_bytes()).decode()
    (drop / "warc.paths.gz").write_bytes(gzip.compress((listing + "extra.warc.gz\n").encode()))
    second = tick_crawl_sensor(instance, defs, first.cursor)
    assert _backfill(second)[1] == ["CC-MAIN-SAMPLE/00004"]
    assert len(instance.get_dynamic_partitions(SHARDS)) == 5


def test_a_second_drop_is_its_own_backfill(instance, defs, drops_dir):
    first = tick_crawl_sensor(instance, defs, None)
    for name, warc in (("CC-MAIN-OTHER", "wikipedia-2012-homepage.warc.gz"),
                       ("CC-MAIN-THIRD", "wget-2024-sample.warc.gz")):
        (drops_dir / name).mkdir()
        shutil.copy(SHARED_WARCS / warc, drops_dir / name / "w.warc.gz")
    second = tick_crawl_sensor(instance, defs, first.cursor)
    assert [r.tags["laion_assets/crawl"] for r in second.run_requests] == \
        ["CC-MAIN-OTHER", "CC-MAIN-THIRD"]
    assert [backfill_of(r)[1] for r in second.run_requests] == \
        [["CC-MAIN-OTHER/00000"], ["CC-MAIN-THIRD/00000"]]


# -- the takedown sensor: list changes and priorities -----------------------------------------

RELEASE = "laion-assets"


@pytest.fixture(scope="module")
def released(tmp_path_factory, sample_drop_template):
    """Two sample shards through the safety stage and release v1, on a module instance."""
    with instance_for_test() as instance:
        defs = materialize_sample_shards(tmp_path_factory.mktemp("released"),
                                         sample_drop_template, instance)
        ok, _ = cut_release(defs, instance, {"name": RELEASE})
        assert ok
        yield instance, defs, defs.resources["dataset_store"].store()


def _tick_takedowns(instance, defs, cursor=None):
    return takedown_sensor(build_sensor_context(instance=instance, cursor=cursor,
                                                resources=defs.resources))


def _put(store, name: str, text: str) -> None:
    with store.open(name, "wb") as handle:
        handle.write(text.encode())


def test_a_list_change_matching_released_rows_requests_the_next_version(released, shard_runs):
    instance, defs, store = released
    v1 = latest_release(store, RELEASE)
    rows = pq.read_table(store.path(f"{v1.folder}/provenance/part-00000.parquet")).to_pylist()
    urls = dict(zip(*pq.read_table(store.path(f"{v1.folder}/data/part-00000.parquet"),
                                   columns=["hash", "URL"]).to_pydict().values(), strict=True))
    target = rows[0]
    # a change that matches no released row: nothing to cut, and remembered as checked
    _put(store, "safety/hash_lists/md5/unrelated.txt", f"{'00' * 16}\n")
    quiet = _tick_takedowns(instance, defs)
    assert not quiet.run_requests and quiet.skip_reason
    assert json.loads(quiet.cursor) == {f"{RELEASE}@v1": load_lists(store).version}
    # the md5 of a released image, in a CSV in a subfolder of the md5 lists
    listed = "safety/hash_lists/md5/partner/2026.CSV"
    _put(store, listed, f"label,md5\ncsam-report,{target['md5'].upper()}\n")
    result = _tick_takedowns(instance, defs, quiet.cursor)
    [request] = result.run_requests
    lists = load_lists(store)
    assert request.run_key == f"{RELEASE}@lists:{lists.version[:16]}"
    assert request.tags["laion_assets/trigger"] == "list_change"
    config = request.run_config["ops"]["release"]["config"]
    assert config["parent_version"] == 1 and listed in config["notes"]
    assert int(request.tags["dagster/priority"]) > _priority(shard_runs)
    assert _tick_takedowns(instance, defs, result.cursor).run_requests[0].run_key == \
        request.run_key  # asked again with the same key until v2 is out
    ok, _ = cut_release(defs, instance, config)
    assert ok
    v2 = latest_release(store, RELEASE)
    assert v2.version == 2 and v2.lists_version == lists.version
    kept = pq.read_table(store.path(f"{v2.folder}/data/part-00000.parquet")).column("hash")
    assert target["hash"] not in kept.to_pylist() and v2.rows == v1.rows - 1
    assert any(listed in line and line.startswith("safety lists changed since v1")
               for line in v2.changelog)
    assert any(line.startswith("removed 1: hash_list: ") and listed in line
               for line in v2.changelog)
    removed = pq.read_table(store.path(f"{v2.folder}/removed.parquet")).to_pylist()
    assert [(r["hash"], r["URL"]) for r in removed] == [(target["hash"], urls[target["hash"]])]
    assert not _tick_takedowns(instance, defs, result.cursor).run_requests


def test_a_takedown_request_outranks_shard_runs(released, shard_runs):
    instance, defs, store = released
    released_url = pq.read_table(store.path(
        f"{latest_release(store, RELEASE).folder}/data/part-00000.parquet")).column("URL")[0]
    append(store, [new_takedown("url", released_url.as_py(), "privacy request")])
    [request] = _tick_takedowns(instance, defs).run_requests
    assert request.tags["laion_assets/trigger"] == "takedown"
    assert request.run_key.startswith(f"{RELEASE}@ledger:1:")
    assert int(request.tags["dagster/priority"]) > _priority(shard_runs)


@pytest.fixture
def shard_runs(instance, defs):
    """The crawl sensor's backfill request for a fresh drop (its runs carry its tags)."""
    runs = tick_crawl_sensor(instance, defs, None).run_requests
    assert runs
    return runs


def _priority(requests) -> int:
    """The highest dagster/priority among run requests (Dagster's default: 0)."""
    return max(int((r.tags or {}).get("dagster/priority", 0)) for r in requests)
