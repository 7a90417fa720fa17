"""After an incremental re-run, every report describes what the store holds, not the re-run.

The second run of `downloaded_images` keeps the first run's results (successes and permanent
failures) and fetches nothing; its manifest, its materialization metadata, the CLI summary
and a release's card must still count every stored result.
"""

from dagster import AssetKey

from laion_assets.defs.headless import cut_release
from laion_assets.defs.summary import print_summary
from laion_assets.pipeline.core.manifests import (
    DownloadedImagesManifest,
    ExtractedPairsManifest,
    require_current,
)
from laion_assets.pipeline.release.publish import latest_release
from laion_assets_tests.chains import materialize_sample_shards

SHARD = "CC-MAIN-SAMPLE/00000"


def _latest_metadata(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_rerun_reports_every_stored_result(tmp_path, sample_drop_template, instance, capsys):
    defs = materialize_sample_shards(tmp_path, sample_drop_template, instance, files=1)
    store = defs.resources["dataset_store"].store()
    first = require_current(store, DownloadedImagesManifest, SHARD)
    results = store.read_parquet(first.results_file, columns=["status"])
    assert first.ok == results.column("status").to_pylist().count("ok") > 0
    assert first.failed == results.num_rows - first.ok > 0  # the sample has uncaptured images
    assert (first.kept, first.fetched_this_run) == (0, first.rows)

    job = defs.resolve_job_def("shard_pipeline")
    assert job.execute_in_process(partition_key=SHARD, instance=instance).success

    again = require_current(store, DownloadedImagesManifest, SHARD)
    assert again.attempt != first.attempt
    assert (again.kept, again.fetched_this_run) == (first.rows, 0)  # nothing fetched again
    assert (again.rows, again.ok, again.failed) == (first.rows, first.ok, first.failed)
    assert again.failures == first.failures and again.by_source == first.by_source
    assert again.bytes == first.bytes > 0

    meta = _latest_metadata(instance, "downloaded_images")
    assert (meta["ok"], meta["failed"], meta["dagster/row_count"]) == (
        first.ok, first.failed, first.rows)
    assert (meta["kept"], meta["fetched_this_run"]) == (first.rows, 0)
    assert f"| replay | {first.by_source['replay']:,} |" in meta["by_source"]

    capsys.readouterr()
    print_summary(defs, [SHARD])
    row = next(line.split() for line in capsys.readouterr().out.splitlines()
               if line.startswith(SHARD))
    pairs = require_current(store, ExtractedPairsManifest, SHARD)
    assert row[3:6] == [str(pairs.html_pages), str(pairs.rows), str(first.ok)]

    ok, _ = cut_release(defs, instance, {"name": "counts"})
    assert ok
    manifest = latest_release(store, "counts")
    assert manifest.counts["fetched"] == first.ok
    assert manifest.counts["html_pages"] == pairs.html_pages > 0
    assert [s.counts["fetched"] for s in manifest.source_shards] == [first.ok]
    with store.open(manifest.path("README.md")) as handle:
        card = handle.read().decode()
    assert f"unique image URLs fetched and verified by decoding: {first.ok:,}" in card
    assert f"HTML pages read from the WARC files: {pairs.html_pages:,}" in card
