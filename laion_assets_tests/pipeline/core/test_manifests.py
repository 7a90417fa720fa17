"""Typed manifests: written through the store, read back typed, older JSON still readable."""

import json

import pytest

from laion_assets.pipeline.core.manifests import (
    MANIFESTS,
    STAGES,
    DownloadedImagesManifest,
    ManifestError,
    ReleaseManifest,
    WarcShardsManifest,
    commit,
    read_current,
    require_current,
)
from laion_assets.pipeline.core.store import DatasetStore, StoreError

SHARD = "CC-TEST/00000"


def test_one_manifest_type_per_stage_in_flow_order():
    assert list(MANIFESTS) == list(STAGES)
    assert [kind.STAGE for kind in MANIFESTS.values()] == list(STAGES)


def test_a_committed_manifest_reads_back_typed(tmp_path):
    store = DatasetStore(str(tmp_path))
    assert read_current(store, WarcShardsManifest, SHARD) is None
    written = WarcShardsManifest(
        shard=SHARD, crawl="CC-TEST", bytes=12, data_version="abc", run_id="run-1",
        files=({"uri": "/drop/a.warc.gz", "size": 12, "sha256": "00" * 32},))
    with store.stage_output(WarcShardsManifest.STAGE, SHARD) as output:
        committed = commit(output, written)
    assert committed.folder.startswith(f"warc_shards/{SHARD}/") and committed.committed_at
    read = require_current(store, WarcShardsManifest, SHARD)
    assert read == committed
    assert read.uris == ["/drop/a.warc.gz"] and read.files[0].size == 12
    on_disk = store.read_json(f"warc_shards/{SHARD}/_CURRENT.json")
    assert on_disk["files"][0]["sha256"] == "00" * 32 and on_disk["bytes"] == 12


def test_nothing_committed_names_the_folder(tmp_path):
    store = DatasetStore(str(tmp_path))
    with pytest.raises(StoreError, match=f"downloaded_images/{SHARD}: nothing committed"):
        require_current(store, DownloadedImagesManifest, SHARD)


def test_an_older_download_manifest_gets_its_failed_count(tmp_path):
    older = {"shard": SHARD, "rows": 5, "results_file": "r.parquet", "tars": [], "ok": 2,
             "failures": {"http_404": 2, "timeout": 1}, "by_source": {"live": 5},
             "sources": ["live"], "data_version": "v", "folder": "f"}
    manifest = DownloadedImagesManifest.from_json(older)
    assert (manifest.failed, manifest.fetched_this_run, manifest.kept) == (3, 5, 0)


def test_a_manifest_missing_a_field_names_the_shard_and_folder():
    with pytest.raises(ManifestError, match=f"downloaded_images manifest of '{SHARD}' "
                                            "\\(folder 'x'\\).*results_file"):
        DownloadedImagesManifest.from_json({"shard": SHARD, "folder": "x", "rows": 1,
                                            "data_version": "v"})


def test_a_release_written_with_pages_reads_as_html_pages():
    value = {"name": "r", "version": 2, "folder": "releases/r/v0002", "rows": 3, "parts": 1,
             "counts": {"pages": 7, "candidates": 5, "released": 3},
             "source_shards": [{"shard": SHARD, "data_version": "v", "run_id": "x",
                                "stages": {}, "counts": {"pages": 7}, "later_field": 1}]}
    manifest = ReleaseManifest.from_json(json.loads(json.dumps(value)))
    assert manifest.counts == {"html_pages": 7, "candidates": 5, "released": 3}
    assert manifest.source_shards[0].counts == {"html_pages": 7}
    assert manifest.path("README.md") == "releases/r/v0002/README.md"
