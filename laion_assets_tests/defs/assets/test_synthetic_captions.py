"""`synthetic_captions` on a real instance: opt-in job, incremental re-run, metadata."""

from pathlib import Path

import open_clip
import pytest
from dagster import AssetKey

from laion_assets.defs.headless import cut_release
from laion_assets.pipeline.captions.stage import CAPTIONS_SCHEMA
from laion_assets.pipeline.core.manifests import (
    DownloadedImagesManifest,
    SyntheticCaptionsManifest,
    require_current,
)
from laion_assets.pipeline.formats.webdataset import url_key
from laion_assets.pipeline.release.provenance import trace
from laion_assets.pipeline.release.publish import (
    CAPTION_FIELDS,
    RELEASE_SCHEMA,
    latest_release,
    list_versions,
)
from laion_assets.provenance_cli import format_record
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


def _data(store, manifest):
    return store.read_parquet(manifest.path("data/part-00000.parquet"))


def test_a_release_opts_in_to_caption_columns_per_crawl(defs, instance):
    store, captions = _caption(defs, instance)
    ok, _ = cut_release(defs, instance, {"name": "plain"})
    assert ok
    ok, _ = cut_release(defs, instance, {"name": "coco", "captions": ["CC-MAIN-SAMPLE"]})
    assert ok
    plain, coco = latest_release(store, "plain"), latest_release(store, "coco")
    assert _data(store, plain).schema.names == RELEASE_SCHEMA.names
    rows = _data(store, coco)
    assert rows.schema.names == RELEASE_SCHEMA.names + [n for n, _ in CAPTION_FIELDS]
    assert rows.num_rows == plain.rows > 0
    table = store.read_parquet(captions.file)
    by_key = dict(zip(table.column("url_key").to_pylist(),
                      table.column("top_caption").to_pylist(), strict=True))
    for url, top, alts in zip(rows.column("URL").to_pylist(),
                              rows.column("top_caption").to_pylist(),
                              rows.column("all_captions").to_pylist(), strict=True):
        assert top == by_key[url_key(url)] and alts[0] == top
    records = trace(store, url=rows.column("URL")[0].as_py())
    entry = next(e for e in records[0]["releases"] if e["name"] == "coco")
    assert entry["caption_models"]["captioner"]["model"] == "coca_tiny"
    assert "captions by coca_tiny (none), ranked by ViT-B-32" in format_record(records[0])
    assert all("caption_models" not in e for e in records[0]["releases"] if e["name"] == "plain")
    (source,) = coco.source_shards
    assert source.captions["captioner"]["model"] == "coca_tiny"
    assert source.captions["data_version"] == captions.data_version
    assert plain.source_shards[0].captions is None


def test_a_crawl_opted_in_without_captions_is_refused(defs, instance):
    store = defs.resources["dataset_store"].store()
    current = store.path(f"synthetic_captions/{SHARD}/_CURRENT.json")
    hidden = current + ".hidden"
    store.fs.mv(current, hidden)
    try:
        ok, _ = cut_release(defs, instance, {"name": "refused", "captions": ["CC-MAIN-SAMPLE"]})
    finally:
        store.fs.mv(hidden, current)
    assert not ok
    assert list_versions(store, "refused") == []
