"""Helpers the tests share: a module-wide instance, the sample drop cut down and
materialized, a crawl-sensor tick."""

import gzip
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, build_sensor_context, instance_for_test

from laion_assets.definitions import build_definitions
from laion_assets.defs.headless import materialize_drop
from laion_assets.defs.sensors import crawl_drop_sensor
from laion_assets.settings import Settings


@pytest.fixture(scope="module", name="instance")
def module_instance():
    """One Dagster instance for a test module (bind it: `instance = chains.module_instance`),
    for modules that materialize once and test the result many times."""
    with instance_for_test() as dagster_instance:
        yield dagster_instance


def materialize_sample_shards(tmp: Path, template: Path, instance: DagsterInstance,
                              files: int = 2, **settings) -> Definitions:
    """The first `files` WARC files of the sample drop, materialized through the safety stage
    with offline settings (replay, untrained CLIP, no similarity threshold)."""
    drop = tmp / "drops" / template.name
    shutil.copytree(template, drop)
    listing = gzip.decompress((drop / "warc.paths.gz").read_bytes()).decode().splitlines()
    (drop / "warc.paths.gz").write_bytes(
        gzip.compress("\n".join(listing[:files]).encode() + b"\n"))
    options = {"store": str(tmp / "store"), "drops": str(tmp / "drops"), "shard_size": 1,
               "listing_base": None, "s3_endpoint": None, "fetch_sources": ("replay",),
               "clip_pretrained": None, "clip_batch_size": 32, "similarity_mode": "off"}
    defs = build_definitions(Settings(**{**options, **settings}))
    runs = materialize_drop(str(drop), defs, instance, log=lambda _: None)
    assert [r.success for r in runs] == [True] * files
    return defs


def tick_crawl_sensor(instance: DagsterInstance, defs: Definitions, cursor: str | None):
    """One evaluation of the crawl-drop sensor, applying its partition requests as the daemon
    does."""
    context = build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources,
                                   definitions=defs)
    result = crawl_drop_sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def backfill_of(request) -> tuple[set[str], list[str]]:
    """(asset names, shard keys) of a crawl-sensor backfill request; every asset of it over the
    same shards."""
    assert request.requires_backfill_daemon() and request.run_key is None
    subset = request.asset_graph_subset
    shards = {tuple(sorted(subset.get_partitions_subset(key).get_partition_keys()))
              for key in subset.asset_keys}
    [keys] = shards
    return {key.to_user_string() for key in subset.asset_keys}, list(keys)
