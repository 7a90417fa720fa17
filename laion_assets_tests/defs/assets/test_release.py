"""`release`: versions, atomic commits, checksums, and takedowns that make the next version."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    SensorResult,
    build_sensor_context,
    materialize,
)

from laion_assets.defs.assets.release import files_match_manifest, release
from laion_assets.defs.headless import cut_release, materialize_drop
from laion_assets.defs.sensors import takedown_sensor
from laion_assets.pipeline.formats.urls import domain_of
from laion_assets.pipeline.release import publish as release_lib
from laion_assets.pipeline.release.publish import (
    PROVENANCE_SCHEMA,
    RELEASE_SCHEMA,
    list_versions,
    read_manifest,
    verify_files,
)
from laion_assets.pipeline.safety.takedowns import append, new_takedown
from laion_assets_tests import chains
from laion_assets_tests.chains import materialize_sample_shards

NAME = "laion-assets"


instance = chains.module_instance


@pytest.fixture(scope="module")
def chain(tmp_path_factory, sample_drop_template, instance):
    """Two shards of the sample drop, materialized through the safety stage, and release v1."""
    defs = materialize_sample_shards(tmp_path_factory.mktemp("release"), sample_drop_template,
                                     instance)
    ok, _ = cut_release(defs, instance, {"name": NAME, "notes": "first version"})
    assert ok
    return defs, defs.resources["dataset_store"].store()


def _rows(store, version: int):
    folder = release_lib.version_folder(NAME, version)
    manifest = read_manifest(store, NAME, version)
    parts = [pq.read_table(store.path(f"{folder}/data/part-{p:05d}.parquet"))
             for p in range(manifest["parts"])]
    return manifest, [r for t in parts for r in t.to_pylist()]


def test_v1_holds_laion_columns_embeddings_provenance_and_a_card(chain, instance):
    _, store = chain
    assert list_versions(store, NAME) == [1]
    manifest, rows = _rows(store, 1)
    assert manifest["parent"] is None and manifest["rows"] == len(rows) > 0
    assert len({r["hash"] for r in rows}) == len(rows)
    safe = sum(s["counts"]["safe"] for s in manifest["source_shards"])
    assert manifest["rows"] == safe - manifest["withheld"].get("duplicate_pair", 0)
    folder = manifest["folder"]
    data = pq.read_table(store.path(f"{folder}/data/part-00000.parquet"))
    provenance = pq.read_table(store.path(f"{folder}/provenance/part-00000.parquet"))
    assert data.schema.names == RELEASE_SCHEMA.names
    assert provenance.schema.names == PROVENANCE_SCHEMA.names
    assert provenance.column("hash").to_pylist() == data.column("hash").to_pylist()
    assert all(provenance.column("safety_run_id").to_pylist())
    image = np.load(store.path(f"{folder}/img_emb/part-00000.npy"))
    text = np.load(store.path(f"{folder}/text_emb/part-00000.npy"))
    assert image.dtype == np.float16 and image.shape == text.shape == (data.num_rows, 512)
    counts = manifest["counts"]
    assert counts["candidates"] >= counts["scored"] >= counts["safe"] >= counts["released"]
    assert {s["shard"] for s in manifest["source_shards"]} == {
        "CC-MAIN-SAMPLE/00000", "CC-MAIN-SAMPLE/00001"}
    assert manifest["coverage"] == {"CC-MAIN-SAMPLE": {"known": 2, "included": 2}}
    assert verify_files(store, manifest) == []
    card = store.open(f"{folder}/README.md").read().decode()
    for heading in ("## How it was built", "## Filters and thresholds", "## Known limitations",
                    "## Requesting removal"):
        assert heading in card
    for check in ("files_match_manifest", "no_listed_rows", "coverage"):
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey("release"), check), limit=1)
        assert history and history[0].evaluation.passed, check


def test_takedowns_make_a_new_version_without_the_rows(chain, instance):
    defs, store = chain
    v1, rows = _rows(store, 1)
    provenance = pq.read_table(store.path(f"{v1['folder']}/provenance/part-00000.parquet"))
    sha_of = dict(zip(provenance.column("hash").to_pylist(),
                      provenance.column("sha256").to_pylist(), strict=True))
    domain = domain_of(rows[-1]["URL"])
    elsewhere = [r for r in rows if domain_of(r["URL"]) != domain]
    by_url, by_hash = elsewhere[0], elsewhere[-1]
    append(store, [new_takedown("url", by_url["URL"], "privacy request")])
    append(store, [new_takedown("domain", domain, "site opted out"),
                   new_takedown("sha256", sha_of[by_hash["hash"]], "partner hash list")])
    context = build_sensor_context(instance=instance, resources=defs.resources)
    result = takedown_sensor(context)
    assert isinstance(result, SensorResult) and len(result.run_requests) == 1
    request = result.run_requests[0]
    config = request.run_config["ops"]["release"]["config"]
    assert config["name"] == NAME and "3 new ledger entries" in config["notes"]
    ok, _ = cut_release(defs, instance, config)
    assert ok
    v2, rows2 = _rows(store, 2)
    kept = {r["hash"] for r in rows2}
    expected_gone = {by_url["hash"], by_hash["hash"]} | {
        r["hash"] for r in rows if domain_of(r["URL"]) == domain}
    assert not kept & expected_gone and kept == {r["hash"] for r in rows} - expected_gone
    assert v2["parent"] == 1 and v2["removed_by_reason"] == {"takedown": len(expected_gone)}
    assert any(f"takedown {len(expected_gone)}" in line for line in v2["changelog"])
    assert any(line.startswith("removed 1: takedown: ") and "privacy request" in line
               for line in v2["changelog"])
    assert sum(v2["removed_by_request"].values()) == len(expected_gone)
    removed = pq.read_table(store.path(f"{v2['folder']}/removed.parquet")).to_pylist()
    assert {r["hash"] for r in removed} == expected_gone
    reasons = {r["hash"]: r["reason"] for r in removed}
    assert "privacy request" in reasons[by_url["hash"]]
    assert "partner hash list" in reasons[by_hash["hash"]]
    assert verify_files(store, v1) == []  # the earlier version is untouched
    again = takedown_sensor(build_sensor_context(instance=instance, resources=defs.resources))
    assert isinstance(again, SensorResult) and not again.run_requests and again.skip_reason


def test_an_interrupted_release_leaves_no_visible_version(chain, instance, monkeypatch):
    defs, store = chain
    before = list_versions(store, NAME)

    def crash(manifest):
        raise RuntimeError("power cut while writing the card")

    monkeypatch.setattr(release_lib, "dataset_card", crash)
    ok, _ = cut_release(defs, instance, {"name": NAME})
    assert not ok
    assert list_versions(store, NAME) == before
    next_folder = release_lib.version_folder(NAME, before[-1] + 1)
    assert not store.exists(next_folder)  # the failed publish removed its own folder
    monkeypatch.undo()
    ok, _ = cut_release(defs, instance, {"name": NAME})
    assert ok and list_versions(store, NAME) == [*before, before[-1] + 1]
    assert verify_files(store, read_manifest(store, NAME, before[-1] + 1)) == []


def test_a_takedown_version_keeps_its_parents_shards_not_a_newer_crawls(
        chain, instance, sample_drop_template):
    """A crawl materialized after the parent version enters no takedown version (the parent
    minus the removals); it enters the next explicit release run."""
    defs, store = chain
    parent = read_manifest(store, NAME, list_versions(store, NAME)[-1])
    _, parent_rows = _rows(store, parent["version"])
    drop = Path(store.root).parent / "drops" / "CC-MAIN-LATER"
    shutil.copytree(sample_drop_template, drop)
    listing = gzip.decompress((drop / "warc.paths.gz").read_bytes()).decode().splitlines()
    (drop / "warc.paths.gz").write_bytes(gzip.compress(listing[2].encode() + b"\n"))
    runs = materialize_drop(str(drop), defs, instance, log=lambda _: None)
    assert [(r.shard, r.success) for r in runs] == [("CC-MAIN-LATER/00000", True)]
    later = store.read_parquet(
        store.require_current("safety_filtered_pairs", "CC-MAIN-LATER/00000")["files"][
            "pairs.parquet"], columns=["pair_id"]).column("pair_id").to_pylist()
    assert set(later) - {r["hash"] for r in parent_rows}  # rows the parent does not hold

    victim = parent_rows[0]
    append(store, [new_takedown("url", victim["URL"], "court order")])
    result = takedown_sensor(build_sensor_context(instance=instance, resources=defs.resources))
    config = result.run_requests[0].run_config["ops"]["release"]["config"]
    assert config["parent_version"] == parent["version"]
    assert cut_release(defs, instance, config)[0]
    manifest, rows = _rows(store, parent["version"] + 1)
    gone = {r["hash"] for r in parent_rows if r["URL"] == victim["URL"]}
    assert {r["hash"] for r in rows} == {r["hash"] for r in parent_rows} - gone
    assert manifest["parent"] == parent["version"] and manifest["rows"] == len(rows)
    assert manifest["source_shards"] == parent["source_shards"]
    assert manifest["coverage"] == parent["coverage"]
    provenance = store.read_parquet(f"{manifest['folder']}/provenance/part-00000.parquet")
    assert set(provenance.column("shard").to_pylist()) <= {
        s["shard"] for s in parent["source_shards"]}
    assert manifest["removed_by_reason"] == {"takedown": len(gone)}
    assert verify_files(store, manifest) == []

    assert cut_release(defs, instance, {"name": NAME, "notes": "adds the later crawl"})[0]
    explicit = read_manifest(store, NAME, parent["version"] + 2)
    assert "CC-MAIN-LATER/00000" in {s["shard"] for s in explicit["source_shards"]}


def test_a_corrupted_part_fails_the_checksum_check(chain, instance):
    defs, store = chain
    version = list_versions(store, NAME)[-1]
    manifest = read_manifest(store, NAME, version)
    path = store.path(f"{manifest['folder']}/data/part-00000.parquet")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    assert verify_files(store, manifest) == [
        f"data/part-00000.parquet: sha256 {_sha(path)[:12]}…, manifest "
        f"{manifest['files']['data/part-00000.parquet']['sha256'][:12]}…"]
    result = materialize([release, files_match_manifest], resources=defs.resources,
                         instance=instance, raise_on_error=False,
                         selection=AssetSelection.checks(files_match_manifest))
    evaluation = result.get_asset_check_evaluations()[0]
    assert not evaluation.passed
    assert "data/part-00000.parquet" in evaluation.metadata["problems"].value


def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()
