"""The dataset store and the crawl drops on `s3://`, through s3fs, against a real S3-protocol
server on loopback (moto): the whole shard chain, the crawl-drop sensor on an S3 prefix, and
the commit protocol where S3 has no rename."""

from __future__ import annotations

import gzip
import json
import os
import posixpath

import pytest
from dagster import AssetKey, DynamicPartitionsDefinition

from laion_assets.definitions import build_definitions
from laion_assets.defs.headless import cut_release, materialize_drop
from laion_assets.defs.partitions import SHARDS
from laion_assets.pipeline.core.store import CURRENT, DatasetStore
from laion_assets.pipeline.formats.embeddings import read_embeddings
from laion_assets.pipeline.release.publish import latest_manifest, verify_files
from laion_assets.settings import Settings, storage_options
from laion_assets_tests import s3 as s3_server
from laion_assets_tests.chains import backfill_of, tick_crawl_sensor

moto_endpoint = s3_server.moto_endpoint
s3 = s3_server.s3

CRAWL = "CC-MAIN-SAMPLE"
SHARD_KEYS = [f"{CRAWL}/{i:05d}" for i in range(4)]
CORE_STAGES = ("warc_shards", "extracted_pairs", "downloaded_images", "clip_scored_pairs")


@pytest.fixture
def s3_settings(s3: s3_server.S3Server, sample_drop_template) -> Settings:
    """A fresh bucket holding the sample drop under `drops/`; the store under `store/`."""
    bucket = s3.bucket()
    s3.upload(sample_drop_template, f"s3://{bucket}/drops/{CRAWL}")
    return Settings(store=f"s3://{bucket}/store", drops=f"s3://{bucket}/drops",
                    s3_endpoint=s3.endpoint, shard_size=1, listing_base=None,
                    fetch_sources=("replay",), clip_pretrained=None, clip_batch_size=32,
                    similarity_mode="off")  # untrained CLIP: a threshold would keep nothing


def _shard_stages(defs) -> list[str]:
    """The per-shard assets of the shard pipeline job, upstream first (each one's store stage
    is its asset name), so stages added to the job later are checked here too."""
    graph = defs.resolve_asset_graph()
    selected = defs.resolve_job_def("shard_pipeline").asset_layer.selected_asset_keys
    return [key.path[-1] for key in graph.toposorted_asset_keys if key in selected
            and isinstance(graph.get(key).partitions_def, DynamicPartitionsDefinition)
            and graph.get(key).partitions_def.name == SHARDS]


def _store_paths(value, prefix: str) -> list[str]:
    """Every string in a manifest that is a store path under `prefix` (its files)."""
    if isinstance(value, str):
        return [value] if value.startswith(prefix) else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [p for item in value for p in _store_paths(item, prefix)]
    return []


# -- the whole shard chain ----------------------------------------------------------------


def test_the_whole_shard_chain_on_s3(s3, s3_settings, instance, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"  # a store that wrote to local paths would write relative to here
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    defs = build_definitions(s3_settings)
    store = defs.resources["dataset_store"].store()
    assert not store.is_local and store.uri("x") == f"{s3_settings.store}/x"

    runs = materialize_drop(f"{s3_settings.drops}/{CRAWL}", defs, instance, log=lambda _: None)
    assert [(r.shard, r.success) for r in runs] == [(k, True) for k in SHARD_KEYS]

    stages = _shard_stages(defs)
    assert stages[:4] == list(CORE_STAGES)
    store_root = s3_settings.store.removeprefix("s3://")
    for stage in stages:  # every stage, every shard: committed on S3, files complete
        assert instance.get_materialized_partitions(AssetKey(stage)) == set(SHARD_KEYS), stage
        for shard in SHARD_KEYS:
            partition = posixpath.join(stage, shard)
            assert s3.fs.exists(f"{store_root}/{partition}/{CURRENT}"), partition
            manifest = store.require_current(stage, shard)
            assert manifest["run_id"] in {r.run_id for r in runs}
            assert manifest["folder"] == posixpath.join(partition, manifest["attempt"])
            files = [p for p in _store_paths(manifest, partition + "/")
                     if p != manifest["folder"]]  # the folder: no object on S3 when empty
            for path in files:
                assert path.startswith(manifest["folder"] + "/"), (partition, path)
                assert s3.fs.exists(f"{store_root}/{path}"), (partition, path)
            # one committed attempt is all that is left of the partition
            left = {posixpath.relpath(k, f"{store_root}/{partition}")
                    for k in s3.keys(f"{store_root}/{partition}")}
            assert {p.split("/")[0] for p in left} <= {CURRENT, manifest["attempt"]}, left
            for path in files:  # every table a stage names reads back through the store
                if path.endswith(".parquet"):
                    assert store.read_parquet(path).num_rows >= 0
            if stage in CORE_STAGES:  # later stages (filters) may keep nothing of a shard
                assert manifest["rows"] > 0 if "rows" in manifest else stage == "warc_shards"

    total_pairs = 0
    for shard in SHARD_KEYS:
        raw = store.require_current("warc_shards", shard)
        assert [f["uri"].startswith(f"{s3_settings.drops}/{CRAWL}/") for f in raw["files"]] \
            == [True]
        extracted = store.require_current("extracted_pairs", shard)
        pairs = store.read_parquet(extracted["file"], columns=["pair_id", "url", "warc_file"])
        assert pairs.num_rows == extracted["rows"] > 0
        assert set(pairs.column("warc_file").to_pylist()) == {raw["files"][0]["uri"]}
        total_pairs += pairs.num_rows

        images = store.require_current("downloaded_images", shard)
        results = store.read_parquet(images["results_file"], columns=["url", "status"])
        assert results.num_rows == images["rows"] == len(set(pairs.column("url").to_pylist()))
        ok_urls = {u for u, s in zip(results.column("url").to_pylist(),
                                     results.column("status").to_pylist(), strict=True)
                   if s == "ok"}
        assert len(ok_urls) == images["ok"] > 0
        assert images["tars"] and all(store.exists(t) for t in images["tars"])

        scored = store.require_current("clip_scored_pairs", shard)
        folder = scored["folder"]
        embeddings = read_embeddings(lambda name, f=folder: store.open(f"{f}/{name}"))
        ids = embeddings.ids.column("pair_id").to_pylist()
        assert len(ids) == scored["rows"] == embeddings.image.shape[0] > 0
        expected = {p for p, u in zip(pairs.column("pair_id").to_pylist(),
                                      pairs.column("url").to_pylist(), strict=True)
                    if u in ok_urls}
        assert set(ids) <= set(pairs.column("pair_id").to_pylist())
        assert set(ids) == expected
    assert total_pairs > 0
    # a release on S3: committed by its manifest, every file listed with its checksum
    ok, _ = cut_release(defs, instance, {"name": "on-s3"})
    assert ok
    manifest = latest_manifest(store, "on-s3")
    assert manifest["folder"] == "releases/on-s3/v0001"
    assert manifest["rows"] == sum(store.current("safety_filtered_pairs", k)["rows"]
                                   for k in SHARD_KEYS) - manifest["withheld"].get(
        "duplicate_pair", 0) > 0
    assert verify_files(store, manifest) == []
    for relative in manifest["files"]:
        assert s3.fs.exists(f"{store_root}/{manifest['folder']}/{relative}")

    # the store wrote nothing locally: not under the working directory, nor under tmp_path
    assert sorted(os.listdir(cwd)) == []
    assert not any(p.name in ("store", CURRENT) for p in tmp_path.rglob("*")), \
        sorted(tmp_path.rglob("*"))


# -- the crawl-drop sensor on an S3 prefix --------------------------------------------------


def test_the_sensor_watches_an_s3_prefix(s3, s3_settings, instance):
    """One long-lived process (a code server) ticking while another process uploads: the
    uploads go through a separate S3 client, and the s3fs instance cache is not cleared."""
    defs = build_definitions(s3_settings)
    drop = f"{s3_settings.drops}/{CRAWL}"

    first = tick_crawl_sensor(instance, defs, None)
    [backfill] = first.run_requests  # one backfill over the drop's shards
    assert backfill_of(backfill)[1] == SHARD_KEYS
    assert sorted(instance.get_dynamic_partitions(SHARDS)) == SHARD_KEYS
    assert list(json.loads(first.cursor)) == [drop]
    registry = json.loads(s3.fs.cat_file(
        f"{s3_settings.store.removeprefix('s3://')}/shards/{CRAWL}.json"))
    assert [s["key"] for s in registry["shards"]] == SHARD_KEYS
    assert all(f.startswith(f"{drop}/") for s in registry["shards"] for f in s["files"])

    again = tick_crawl_sensor(instance, defs, first.cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []

    # one more WARC file in the drop, and its line in the drop's listing
    listing = f"{drop}/warc.paths.gz"
    lines = gzip.decompress(s3.fs.cat_file(listing)).decode()
    first_warc = lines.splitlines()[0]
    extra = "segments/1700000000001.00/warc/CC-MAIN-SAMPLE-20261122000000-00004.warc.gz"
    s3.fs.copy(f"{drop}/{first_warc}", f"{drop}/{extra}")
    s3.fs.pipe_file(listing, gzip.compress(f"{lines.rstrip()}\n{extra}\n".encode()))
    third = tick_crawl_sensor(instance, defs, again.cursor)
    assert [backfill_of(r)[1] for r in third.run_requests] == [[f"{CRAWL}/00004"]]
    assert len(instance.get_dynamic_partitions(SHARDS)) == 5

    # a new drop (a new folder under the prefix, WARC files and no listing)
    s3.fs.copy(f"{drop}/{first_warc}", f"{s3_settings.drops}/CC-MAIN-OTHER/a.warc.gz")
    fourth = tick_crawl_sensor(instance, defs, third.cursor)
    assert [backfill_of(r)[1] for r in fourth.run_requests] == [["CC-MAIN-OTHER/00000"]]
    assert tick_crawl_sensor(instance, defs, fourth.cursor).run_requests == []


# -- atomic commit where S3 has no rename ------------------------------------------------------


STAGE, PARTITION = "stage", "crawl/00000"
FILES = ("a.bin", "b.bin")


def _commit(store: DatasetStore, body: bytes) -> dict:
    with store.stage_output(STAGE, PARTITION) as output:
        for name in FILES:
            with output.open(name) as handle:
                handle.write(body + name.encode())
        return output.commit({"files": [output.file(n) for n in FILES]})


def _read_all(store: DatasetStore, manifest: dict) -> list[bytes]:
    out = []
    for path in manifest["files"]:
        with store.open(path) as handle:
            out.append(handle.read())
    return out


@pytest.fixture
def s3_stores(s3):
    """A writer's store and a reader's (another process: its own client, no listing cache)."""
    root = f"s3://{s3.bucket()}/store"
    options = storage_options(s3.endpoint)
    reader_options = {**options, "skip_instance_cache": True, "use_listings_cache": False}
    # the writer collects superseded attempts at once (no grace period)
    return DatasetStore(root, options, gc_grace_seconds=0), DatasetStore(root, reader_options)


def test_a_failed_attempt_on_s3_leaves_the_old_output(s3, s3_stores):
    writer, reader = s3_stores
    first = _commit(writer, b"first ")
    partition = writer.path(posixpath.join(STAGE, PARTITION))
    assert _read_all(reader, reader.require_current(STAGE, PARTITION)) \
        == [b"first a.bin", b"first b.bin"]

    seen_during = []
    with (pytest.raises(RuntimeError, match="half way"),
          writer.stage_output(STAGE, PARTITION) as output):
        with output.open(FILES[0]) as handle:
            handle.write(b"second")
        # the attempt's first file is on S3, uncommitted: readers see the old output
        assert s3.fs.exists(writer.path(output.file(FILES[0])))
        seen_during.append(reader.require_current(STAGE, PARTITION))
        seen_during.append(_read_all(reader, seen_during[0]))
        raise RuntimeError("stage failed half way")
    assert seen_during == [first, [b"first a.bin", b"first b.bin"]]
    assert reader.require_current(STAGE, PARTITION) == first
    assert _read_all(reader, first) == [b"first a.bin", b"first b.bin"]
    left = {posixpath.relpath(k, partition) for k in s3.keys(partition)}
    assert left == {CURRENT} | {posixpath.relpath(writer.path(f), partition)
                                for f in first["files"]}  # no attempt folder left behind


def test_a_failure_between_the_files_and_the_commit_keeps_a_whole_marker(s3, s3_stores):
    writer, reader = s3_stores
    first = _commit(writer, b"first ")
    with (pytest.raises(RuntimeError, match="before commit"),
          writer.stage_output(STAGE, PARTITION) as output):
        for name in FILES:
            with output.open(name) as handle:
                handle.write(b"second")
        raise RuntimeError("failed before commit")
    marker = json.loads(s3.fs.cat_file(writer.path(f"{STAGE}/{PARTITION}/{CURRENT}")))
    assert marker == first and reader.require_current(STAGE, PARTITION) == first
    assert all(s3.fs.exists(writer.path(f)) for f in marker["files"])  # a complete folder
    assert not any(output.attempt in k for k in s3.keys(writer.path(STAGE)))


def test_a_failed_commit_put_keeps_the_old_marker(s3, s3_stores):
    writer, reader = s3_stores
    first = _commit(writer, b"first ")

    def refuse(path, data, **kwargs):
        raise OSError("connection reset during PUT")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(OSError, match="reset"):
        patch.setattr(writer.fs, "pipe_file", refuse)
        _commit(writer, b"second ")
    assert reader.require_current(STAGE, PARTITION) == first
    assert _read_all(reader, first) == [b"first a.bin", b"first b.bin"]
    attempts = {k.split("/")[-2] for k in s3.keys(writer.path(f"{STAGE}/{PARTITION}"))
                if not k.endswith(CURRENT)}
    assert attempts == {first["attempt"]}


def test_a_commit_is_one_put_of_a_whole_marker(s3, s3_stores, monkeypatch):
    """The marker object is written once, by a single PutObject whose body is the whole
    manifest, after every file of the attempt is on S3; nothing else touches it."""
    writer, reader = s3_stores
    first = _commit(writer, b"first ")
    marker_key = writer.path(f"{STAGE}/{PARTITION}/{CURRENT}").split("/", 1)[1]
    calls = []
    original = writer.fs._call_s3

    async def spy(method, *args, **kwargs):  # on fsspec's loop: async calls only
        if marker_key in (kwargs.get("Key"), str(kwargs.get("CopySource"))):
            body = kwargs.get("Body")
            manifest = json.loads(body) if body is not None else None
            complete = manifest is not None and all(
                [await s3.fs._exists(writer.path(f)) for f in manifest["files"]])
            visible = json.loads(await s3.fs._cat_file(writer.path(
                f"{STAGE}/{PARTITION}/{CURRENT}")))
            calls.append((method, manifest, complete, visible))
        return await original(method, *args, **kwargs)

    monkeypatch.setattr(writer.fs, "_call_s3", spy)
    second = _commit(writer, b"second ")
    writes = [c for c in calls if c[0] != "head_object" and c[0] != "get_object"]
    assert [(m, manifest, complete) for m, manifest, complete, _ in writes] \
        == [("put_object", second, True)]
    assert writes[0][3] == first  # up to that PUT, readers saw the old output
    assert reader.require_current(STAGE, PARTITION) == second
    assert _read_all(reader, second) == [b"second a.bin", b"second b.bin"]
    assert not any(s3.fs.exists(writer.path(f)) for f in first["files"])  # superseded: gone


def test_a_commit_by_another_process_is_read_fresh(s3):
    """Two long-lived processes (own s3fs clients, listing caches on as in production): after
    one commits, the other still reads the partition's new marker, never a cached one."""
    root = f"s3://{s3.bucket()}/store"
    options = {**storage_options(s3.endpoint), "skip_instance_cache": True}
    mine, theirs = DatasetStore(root, options), DatasetStore(root, options)
    _commit(mine, b"mine ")  # lists the partition (old attempts removed): now cached here
    assert mine.require_current(STAGE, PARTITION)["files"][0].endswith("a.bin")
    with theirs.stage_output(STAGE, PARTITION) as output:
        with output.open("a.bin") as handle:
            handle.write(b"theirs")
        second = output.commit({"files": [output.file("a.bin")],
                                "note": "a longer manifest than the first " * 4})
    assert mine.require_current(STAGE, PARTITION) == second
    assert _read_all(mine, second) == [b"theirs"]
