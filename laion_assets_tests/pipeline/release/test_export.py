"""A published sample release exported in img2dataset's webdataset layout: every released row
with a stored image once, with the stored bytes, its caption and URL; withheld rows never."""

import json
import shutil
import tarfile
from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.cli import main
from laion_assets.defs.headless import cut_release
from laion_assets.pipeline.core.manifests import (
    DownloadedImagesManifest,
    SafetyFilteredPairsManifest,
    require_current,
)
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.release.export import (
    NOT_STORED,
    ExportError,
    export_images,
    image_extension,
)
from laion_assets.pipeline.release.publish import latest_release
from laion_assets.pipeline.safety.takedowns import append, new_takedown
from laion_assets_tests import chains
from laion_assets_tests.chains import materialize_sample_shards
from laion_assets_tests.test_cli import on_terminal

NAME = "laion-assets"
SHARD = "CC-MAIN-SAMPLE/00000"
instance = chains.module_instance


@pytest.fixture(scope="module")
def released(tmp_path_factory, sample_drop_template, instance):
    """One sample shard through safety; one passing pair's md5 hash-listed; release v1.
    Returns (store, the hash-listed pair's id)."""
    tmp = tmp_path_factory.mktemp("export")
    defs = materialize_sample_shards(tmp, sample_drop_template, instance, files=1)
    store = defs.resources["dataset_store"].store()
    safe = require_current(store, SafetyFilteredPairsManifest, SHARD)
    listed = store.read_parquet(safe.pairs_file, columns=["pair_id", "md5"]).to_pylist()[0]
    with store.open("safety/hash_lists/md5/partner.txt", "wb") as handle:
        handle.write(f"{listed['md5']}\n".encode())
    assert cut_release(defs, instance, {"name": NAME})[0]
    return store, listed["pair_id"]


def _release_rows(store):
    release = latest_release(store, NAME)
    data = pq.read_table(store.path(f"{release.folder}/data/part-00000.parquet"))
    return release, data.to_pylist()


def _stored_images(store) -> dict[str, bytes]:
    """url_key -> image bytes, read straight from the download stage's tars."""
    images = require_current(store, DownloadedImagesManifest, SHARD)
    found = {}
    for name in images.tars:
        with tarfile.open(store.path(name)) as tar:  # tars: store-relative paths
            for member in tar.getmembers():
                if not member.name.endswith(".json"):
                    found[member.name.split(".")[0]] = tar.extractfile(member).read()
    return found


def _samples(folder) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes} over every tar of an export."""
    samples: dict[str, dict[str, bytes]] = defaultdict(dict)
    for path in sorted(folder.glob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, ext = member.name.split(".", 1)
                samples[key][ext] = tar.extractfile(member).read()
    return dict(samples)


def test_every_released_row_is_exported_once_with_its_stored_image(released, tmp_path):
    store, listed = released
    release, rows = _release_rows(store)
    assert listed not in {r["hash"] for r in rows} and release.withheld == {"hash_list": 1}
    result = export_images(store, release, tmp_path / "out")
    assert result.exported == release.rows == len(rows) > 0
    samples = _samples(tmp_path / "out")
    by_hash = {json.loads(s["json"])["hash"]: s for s in samples.values()}
    assert len(by_hash) == len(samples) == len(rows)
    stored = _stored_images(store)
    results = require_current(store, DownloadedImagesManifest, SHARD).results_file
    keys = pq.read_table(store.path(results), columns=["url", "url_key"]).to_pydict()
    urls = dict(zip(keys["url"], keys["url_key"], strict=True))
    for row in rows:
        sample = by_hash[row["hash"]]
        meta = json.loads(sample["json"])
        assert sample["jpg"] == stored[urls[row["URL"]]]
        assert sample["txt"].decode() == row["TEXT"] == meta["caption"]
        assert (meta["url"], meta["original_width"]) == (row["URL"], row["WIDTH"])
        assert meta["status"] == "success" and meta["release"] == f"{NAME}@v1"
        assert len(meta["sha256"]) == 64 and len(meta["md5"]) == 32
    assert listed not in by_hash
    stats = json.loads((tmp_path / "out" / "00000_stats.json").read_text())
    assert (stats["count"], stats["successes"], stats["failed_to_download"]) == \
        (len(rows), len(rows), 0)
    assert stats["status_dict"] == {"success": len(rows)}
    listed_rows = pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()
    assert sorted(r["key"] for r in listed_rows) == sorted(samples)
    assert {r["status"] for r in listed_rows} == {"success"}
    assert {r["hash"] for r in listed_rows} == {r["hash"] for r in rows}


def test_a_row_whose_image_is_no_longer_stored_is_a_failed_download(released, tmp_path):
    store, _ = released
    shutil.copytree(store.path(""), tmp_path / "store")
    copy = DatasetStore(str(tmp_path / "store"))
    release, rows = _release_rows(copy)
    results = copy.path(require_current(copy, DownloadedImagesManifest, SHARD).results_file)
    table = pq.read_table(results)
    lost = rows[0]["URL"]
    tars = [None if u == lost else t for u, t in zip(table.column("url").to_pylist(),
                                                     table.column("tar").to_pylist(),
                                                     strict=True)]
    table = table.set_column(table.schema.get_field_index("tar"), "tar",
                             pa.array(tars, pa.string()))
    pq.write_table(table, results)
    result = export_images(copy, release, tmp_path / "out")
    gone = sum(r["URL"] == lost for r in rows)
    assert result.exported == len(rows) - gone and result.status[NOT_STORED] == gone
    stats = json.loads((tmp_path / "out" / "00000_stats.json").read_text())
    assert (stats["failed_to_download"], stats["successes"]) == (gone, len(rows) - gone)
    failed = [r for r in pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()
              if r["status"] != "success"]
    assert [(r["url"], r["key"], r["error_message"]) for r in failed] == \
        [(lost, None, NOT_STORED)] * gone


def test_keys_and_stats_per_tar(released, tmp_path):
    store, _ = released
    release, rows = _release_rows(store)
    result = export_images(store, release, tmp_path / "out", samples_per_tar=3)
    assert result.tars == [f"{n:05d}.tar" for n in range(-(-len(rows) // 3))]
    samples = _samples(tmp_path / "out")
    assert sorted(samples) == [f"{n // 3:05d}{n % 3}" for n in range(len(rows))]
    assert all(set(s) == {"jpg", "txt", "json"} for s in samples.values())
    counts = [json.loads((tmp_path / "out" / f"{t[:5]}_stats.json").read_text())["successes"]
              for t in result.tars]
    assert sum(counts) == len(rows) and max(counts) == 3


def test_a_takedown_after_publish_is_withheld_from_the_export(released, tmp_path):
    store, _ = released
    shutil.copytree(store.path(""), tmp_path / "store")
    copy = DatasetStore(str(tmp_path / "store"))
    release, rows = _release_rows(copy)
    append(copy, [new_takedown("url", rows[0]["URL"], "owner asked")])
    result = export_images(copy, release, tmp_path / "out")
    gone = sum(r["URL"] == rows[0]["URL"] for r in rows)
    assert result.exported == len(rows) - gone
    assert result.status["withheld: takedown"] == gone
    hashes = {json.loads(s["json"])["hash"] for s in _samples(tmp_path / "out").values()}
    assert rows[0]["hash"] not in hashes
    stats = json.loads((tmp_path / "out" / "00000_stats.json").read_text())
    assert stats["withheld"] == gone and stats["count"] == len(rows)


def test_a_folder_that_is_not_empty_is_refused(released, tmp_path):
    store, _ = released
    release, _ = _release_rows(store)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=f"{out}: exists and is not an empty folder"):
        export_images(store, release, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_image_extensions_by_magic_number():
    assert image_extension(b"\xff\xd8\xff\xe0rest") == "jpg"
    assert image_extension(b"\x89PNG\r\n\x1a\nrest") == "png"
    assert image_extension(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    with pytest.raises(ExportError, match="unknown format"):
        image_extension(b"<svg")


def test_the_cli_exports_a_version_once_and_refuses_the_folder_again(released, tmp_path,
                                                                     monkeypatch, capsys):
    store, _ = released
    release, rows = _release_rows(store)
    monkeypatch.setenv("LAION_ASSETS_STORE", store.path(""))
    out = tmp_path / "images"
    assert main(["release", "--export-images", str(out), "--version", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{out}: {len(rows)} of {len(rows)} rows of {NAME} v1 in 1 tar")
    assert "\x1b" not in printed  # no progress bar when not on a terminal
    assert sorted(p.name for p in out.iterdir()) == ["00000.parquet", "00000.tar",
                                                     "00000_stats.json"]
    assert main(["release", "--export-images", str(out)]) == 2
    assert f"{out}: exists and is not an empty folder" in capsys.readouterr().err
    assert main(["release", "--export-images", str(tmp_path / "x"), "--crawl", "CC"]) == 2
    assert "publishes nothing: leave out --crawl" in capsys.readouterr().err
    assert main(["release", "--version", "1"]) == 2
    assert "use it with --export-images" in capsys.readouterr().err


def test_the_cli_export_shows_progress_on_a_terminal(released, tmp_path):
    store, _ = released
    release, rows = _release_rows(store)
    out = tmp_path / "images"
    seen = on_terminal("release", "--export-images", str(out),
                       env={"LAION_ASSETS_STORE": store.path("")})
    assert f"exporting {NAME} v1" in seen and f"{len(rows)}/{len(rows)}" in seen
    assert f"{out}: {len(rows)} of {len(rows)} rows" in seen
