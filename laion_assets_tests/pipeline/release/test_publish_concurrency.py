"""Publishes under concurrency and change: two publishes of one release name at once, a
publish that fails or is killed, and list entries added while a version is being written.
On a local store and on moto's S3 server, from the sample chain's real shard outputs."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.urls import domain_of
from laion_assets.pipeline.release import publish as publish_module
from laion_assets.pipeline.release.publish import (
    CLAIM,
    PublishContext,
    PublishHooks,
    ReleaseConfig,
    ReleaseError,
    claim_version,
    list_versions,
    publish_release,
    read_manifest,
    read_parts,
    released_rows,
    verify_files,
    version_folder,
)
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.takedowns import append, new_takedown, read_ledger
from laion_assets.pipeline.safety.verify import listed_pairs
from laion_assets.settings import storage_options
from laion_assets_tests import chains
from laion_assets_tests import s3 as s3_server
from laion_assets_tests.chains import materialize_sample_shards

moto_endpoint = s3_server.moto_endpoint
s3 = s3_server.s3
instance = chains.module_instance

NAME = "laion-assets"
ROUNDS = {"local": 8, "s3": 4}


@pytest.fixture(scope="module")
def source(tmp_path_factory, sample_drop_template, instance) -> Path:
    """A local store with two sample shards through safety_filtered_pairs, no release yet."""
    tmp = tmp_path_factory.mktemp("concurrency")
    materialize_sample_shards(tmp, sample_drop_template, instance)
    return tmp / "store"


@pytest.fixture(params=["local", "s3"])
def where(request, source, tmp_path) -> tuple[str, callable]:
    """("local" or "s3", a factory of stores on one copy of `source`: one per publisher, as
    separate processes would have)."""
    if request.param == "local":
        shutil.copytree(source, tmp_path / "store")
        return "local", lambda: DatasetStore(str(tmp_path / "store"))
    server: s3_server.S3Server = request.getfixturevalue("s3")
    root = f"s3://{server.bucket()}/store"
    server.upload(source, root)
    options = {**storage_options(server.endpoint), "skip_instance_cache": True}
    return "s3", lambda: DatasetStore(root, options)


def _context(store: DatasetStore, run_id: str = "test") -> PublishContext:
    return PublishContext(load_lists(store), read_ledger(store), SafetyPolicy(), run_id=run_id,
                          log=lambda _: None)


def _publish_together(stores: list[DatasetStore]) -> tuple[list[dict], list[list[int]]]:
    """Publishes from threads, released together once each has picked its version number."""
    barrier = threading.Barrier(len(stores), timeout=120)
    picks: list[list[int]] = [[] for _ in stores]
    results: list[dict | BaseException] = [None] * len(stores)

    def publish(i: int) -> None:
        def picked(version: int) -> None:
            picks[i].append(version)
            if len(picks[i]) == 1:
                barrier.wait()
        try:
            results[i] = publish_release(stores[i], ReleaseConfig(name=NAME),
                                         _context(stores[i], f"run-{i}"), PublishHooks(picked))
        except BaseException as exc:  # reported by the test below, with its message
            results[i] = exc

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed
    return results, picks


def test_two_publishes_at_once_get_two_whole_versions(where):
    kind, make = where
    rounds = ROUNDS[kind]
    for number in range(rounds):
        manifests, picks = _publish_together([make(), make()])
        first = 2 * number + 1
        # both picked the same number; one claimed it, the other moved on to the next
        assert sorted(picks) == [[first], [first, first + 1]]
        assert sorted(m["version"] for m in manifests) == [first, first + 1]
    store = make()
    assert list_versions(store, NAME) == list(range(1, 2 * rounds + 1))
    for version in list_versions(store, NAME):
        manifest = read_manifest(store, NAME, version)
        assert manifest["folder"] == version_folder(NAME, version)
        assert verify_files(store, manifest) == [], version
        assert manifest["rows"] == released_rows(store, manifest).num_rows > 0


def test_a_failed_publish_removes_its_own_folder_and_a_killed_one_is_skipped(where):
    _, make = where
    store = make()
    v1 = publish_release(store, ReleaseConfig(name=NAME), _context(store))

    def power_cut(version: int) -> None:
        raise RuntimeError("power cut before the commit")

    with pytest.raises(RuntimeError, match="power cut"):
        publish_release(store, ReleaseConfig(name=NAME), _context(store),
                        PublishHooks(files_written=power_cut))
    assert list_versions(store, NAME) == [1]
    assert not store.exists(version_folder(NAME, 2))  # its own folder: removed
    # a publish killed after claiming v2 and writing a part leaves its folder behind
    assert claim_version(store, NAME, "killed-run") == 2
    with store.open(f"{version_folder(NAME, 2)}/data/part-00000.parquet", "wb") as handle:
        handle.write(b"half a part")
    v3 = publish_release(make(), ReleaseConfig(name=NAME), _context(store))
    assert v3["version"] == 3 and v3["parent"] == 1
    assert list_versions(store, NAME) == [1, 3]
    with store.open(f"{version_folder(NAME, 2)}/data/part-00000.parquet") as handle:
        assert handle.read() == b"half a part"  # nobody removes a folder it did not create
    assert store.read_json(f"{version_folder(NAME, 2)}/{CLAIM}")["run_id"] == "killed-run"
    assert verify_files(store, v1) == [] and verify_files(store, v3) == []


def test_list_entries_added_while_writing_are_honoured_at_commit(where):
    """Between writing the parts and the commit, an opt-out domain and an md5 hash list entry
    matching written rows appear: the committed version does not hold those rows."""
    _, make = where
    store = make()
    written: list[int] = []
    planted: dict[str, object] = {}

    def add_entries(version: int) -> None:
        written.append(version)
        if len(written) > 1:
            return
        (_, table), = read_parts(store, version_folder(NAME, version), 1, ("md5",))
        rows = table.to_pylist()
        planted["domain"] = domain_of(rows[0]["URL"])
        other = next(r for r in rows if domain_of(r["URL"]) != planted["domain"])
        planted["md5"], planted["md5_pair"] = other["md5"], other["hash"]
        with store.open("safety/opt_outs/domain/late.txt", "wb") as handle:
            handle.write(f"{planted['domain']}\n".encode())
        with store.open("safety/hash_lists/md5/late.txt", "wb") as handle:
            handle.write(f"{other['md5']}\n".encode())

    manifest = publish_release(store, ReleaseConfig(name=NAME), _context(store),
                               PublishHooks(files_written=add_entries))
    assert written == [1, 1]  # written once, re-checked, written again in its own folder
    rows = released_rows(store, manifest).to_pylist()
    assert rows and all(domain_of(r["url"]) != planted["domain"] for r in rows)
    assert planted["md5_pair"] not in {r["pair_id"] for r in rows}
    assert manifest["withheld"]["hash_list"] == 1 and manifest["withheld"]["opt_out_domain"] >= 1
    assert manifest["lists_version"] == load_lists(store).version
    assert listed_pairs(released_rows(store, manifest), load_lists(store), read_ledger(store),
                        SafetyPolicy()) == []
    assert verify_files(store, manifest) == []


def test_an_unrelated_ledger_entry_during_writing_is_recorded_as_checked(where):
    _, make = where
    store = make()
    written: list[int] = []

    def add_entry(version: int) -> None:
        written.append(version)
        append(store, [new_takedown("domain", "unrelated.example", "not in this release")])

    manifest = publish_release(store, ReleaseConfig(name=NAME), _context(store),
                               PublishHooks(files_written=add_entry))
    assert written == [1]  # no written row matches: committed after one write
    assert manifest["ledger_version"].startswith("1:")
    assert manifest["withheld"].get("takedown", 0) == 0
    assert verify_files(store, manifest) == []


def _version_rows(store: DatasetStore, manifest: dict) -> dict[int, tuple]:
    """hash -> (data row, provenance row, image and text embedding bytes) of a version."""
    rows = {}
    for part in range(manifest["parts"]):
        name, folder = f"part-{part:05d}", manifest["folder"]
        data = store.read_parquet(f"{folder}/data/{name}.parquet").to_pylist()
        provenance = store.read_parquet(f"{folder}/provenance/{name}.parquet").to_pylist()
        embeddings = []
        for kind in ("img_emb", "text_emb"):
            with store.open(f"{folder}/{kind}/{name}.npy") as handle:
                embeddings.append(np.lib.format.read_array(handle))
        for i, row in enumerate(data):
            rows[row["hash"]] = (row, provenance[i], embeddings[0][i].tobytes(),
                                 embeddings[1][i].tobytes())
    return rows


def test_a_takedown_version_is_its_parent_minus_the_removals(where, monkeypatch):
    """Several parts of several row groups: every kept row keeps its columns, provenance and
    embeddings; the source shards are the parent's."""
    _, make = where
    store = make()
    monkeypatch.setattr(publish_module, "ROW_GROUP_ROWS", 5)
    v1 = publish_release(store, ReleaseConfig(name=NAME, rows_per_part=12), _context(store))
    assert v1["parts"] >= 2
    rows1 = _version_rows(store, v1)
    victim = next(iter(rows1.values()))[0]["URL"]
    append(store, [new_takedown("url", victim, "court order")])
    with pytest.raises(ReleaseError, match=r"v0007: not a committed version .*committed: v1\)"):
        publish_release(store, ReleaseConfig(name=NAME, parent_version=7), _context(store))
    v2 = publish_release(store, ReleaseConfig(name=NAME, rows_per_part=12, parent_version=1),
                         _context(store))
    rows2 = _version_rows(store, v2)
    gone = {h for h, row in rows1.items() if row[0]["URL"] == victim}
    assert gone and rows2.keys() == rows1.keys() - gone
    assert all(rows2[h] == rows1[h] for h in rows2)
    assert v2["parent"] == 1 and v2["source_shards"] == v1["source_shards"]
    assert v2["removed_by_reason"] == {"takedown": len(gone)}
    assert verify_files(store, v2) == []
