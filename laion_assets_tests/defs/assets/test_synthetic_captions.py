"""`synthetic_captions` on a real instance: opt-in job, incremental re-run, metadata."""

from pathlib import Path

import open_clip
import pytest
from dagster import AssetKey

from laion_assets.pipeline.captions.stage import CAPTIONS_SCHEMA
from laion_assets.pipeline.core.manifests import (
    DownloadedImagesManifest,
    SyntheticCaptionsManifest,
    require_current,
)
from laion_assets_tests import chains
from laion_assets_tests.chains import materialize_sample_shards

SHARD = "CC-MAIN-SAMPLE/00000"
TINY = Path(__file__).parents[2] / "pipeline" / "captions" / "coca_tiny.json"
open_clip.add_model_config(TINY)

instance = chains.module_instance


@pytest.fixture(scope="module")
def defs(tmp_path_factory, sample_drop_template, instance):
    tmp = tmp_path_factory.mktemp("captions")
    return materialize_sample_shards(tmp, sample_drop_template, instance, files=1,
                                     caption_model="coca_tiny", caption_pretrained=None)


def _caption(defs, instance):
    result = defs.resolve_job_def("shard_captions").execute_in_process(
        partition_key=SHARD, instance=instance)
    assert result.success
    store = defs.resources["dataset_store"].store()
    return store, require_current(store, SyntheticCaptionsManifest, SHARD)


def test_the_shard_pipeline_does_not_caption(defs):
    store = defs.resources["dataset_store"].store()
    assert store.current("synthetic_captions", SHARD) is None


def test_captions_every_fetched_image_then_nothing_new(defs, instance):
    store, first = _caption(defs, instance)
    images = require_current(store, DownloadedImagesManifest, SHARD)
    assert first.rows + first.failed_decodes == images.ok > 0
    assert (first.captioned, first.carried_over) == (first.rows, 0)
    table = store.read_parquet(first.file)
    assert table.schema.equals(CAPTIONS_SCHEMA)
    assert first.captioner["model"] == "coca_tiny"
    assert first.captioner["pretrained"] == "none"
    assert first.ranker["model"] == "ViT-B-32"  # the scoring model ranks by default

    _, second = _caption(defs, instance)
    assert (second.rows, second.captioned, second.carried_over) == (first.rows, 0, first.rows)
    assert store.read_parquet(second.file).equals(table)
    event = instance.fetch_materializations(AssetKey("synthetic_captions"), limit=1).records[0]
    meta = event.asset_materialization.metadata
    assert meta["dagster/row_count"].value == first.rows
    assert meta["captioned_this_run"].value == 0
    assert meta["carried_over"].value == first.rows
