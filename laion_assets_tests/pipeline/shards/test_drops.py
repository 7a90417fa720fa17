import gzip
import shutil

import pytest

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.shards.drops import (
    CrawlDrop,
    DropError,
    drop_fingerprint,
    list_drops,
    list_warc_files,
    load_shard,
    observe_files,
    parse_shard_key,
    register_drop,
    registered_shards,
)
from laion_assets_tests.conftest import SHARED_WARCS


def _files_drop(tmp_path, names=("a", "b", "c")):
    drop = tmp_path / "drops" / "CRAWL-X"
    drop.mkdir(parents=True)
    for name in names:
        shutil.copy(SHARED_WARCS / "wget-2024-sample.warc.gz", drop / f"{name}.warc.gz")
    return drop


def test_list_drops_finds_listing_and_file_drops(tmp_path, drops_dir):
    _files_drop(tmp_path)
    (tmp_path / "drops" / "not-a-drop").mkdir()
    found = list_drops(str(tmp_path / "drops"))
    assert [d.crawl for d in found] == ["CC-MAIN-SAMPLE", "CRAWL-X"]
    assert list_drops(str(tmp_path / "drops" / "CRAWL-X")) == [found[1]]
    assert list_drops(str(tmp_path / "nowhere")) == []


def test_listing_paths_resolve_against_the_drop_or_a_base(drops_dir):
    drop = list_drops(str(drops_dir))[0]
    files = list_warc_files(drop)
    assert len(files) == 4
    assert all(f.startswith(drop.uri + "/segments/") for f in files)
    assert files == sorted(files)
    common = list_warc_files(drop, listing_base="s3://commoncrawl/")
    assert common[0].startswith("s3://commoncrawl/segments/")


def test_absolute_uris_in_a_listing_are_kept(tmp_path):
    drop = tmp_path / "CRAWL-L"
    drop.mkdir()
    (drop / "warc.paths").write_text("# comment\ns3://bucket/x.warc.gz\nrel/y.warc.gz\n\n")
    files = list_warc_files(CrawlDrop(str(drop), "CRAWL-L"))
    assert files == ["s3://bucket/x.warc.gz", f"{drop}/rel/y.warc.gz"]


def test_unreadable_listing_names_the_file(tmp_path):
    drop = tmp_path / "CRAWL-B"
    drop.mkdir()
    (drop / "warc.paths.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DropError, match=r"CRAWL-B/warc.paths.gz: unreadable listing"):
        list_warc_files(CrawlDrop(str(drop), "CRAWL-B"))


def test_registration_is_idempotent_and_only_new_files_make_shards(tmp_path):
    store = DatasetStore(str(tmp_path / "store"))
    drop_dir = _files_drop(tmp_path)
    drop = list_drops(str(drop_dir))[0]
    first = register_drop(store, drop, shard_size=2)
    assert [s.key for s in first] == ["CRAWL-X/00000", "CRAWL-X/00001"]
    assert [len(s.files) for s in first] == [2, 1]
    assert register_drop(store, drop, shard_size=2) == []
    shutil.copy(SHARED_WARCS / "wget-2024-sample.warc.gz", drop_dir / "d.warc.gz")
    added = register_drop(store, drop, shard_size=2)
    assert [(s.key, s.files) for s in added] == [("CRAWL-X/00002", (f"{drop_dir}/d.warc.gz",))]
    assert load_shard(store, "CRAWL-X/00002") == added[0]
    assert len(registered_shards(store, "CRAWL-X")) == 3


def test_fingerprint_changes_when_a_file_is_added(tmp_path):
    drop_dir = _files_drop(tmp_path)
    drop = list_drops(str(drop_dir))[0]
    before = drop_fingerprint(drop)
    assert drop_fingerprint(drop) == before
    shutil.copy(SHARED_WARCS / "wget-2024-sample.warc.gz", drop_dir / "z.warc.gz")
    assert drop_fingerprint(drop) != before


def test_shard_keys_are_validated(tmp_path):
    assert parse_shard_key("CC-MAIN-2024-22/00017") == ("CC-MAIN-2024-22", 17)
    for bad in ("CC|X/00001", "CC/1", "CC/00001/extra", "../x/00001"):
        with pytest.raises(DropError):
            parse_shard_key(bad)
    with pytest.raises(DropError, match="not registered"):
        load_shard(DatasetStore(str(tmp_path)), "CRAWL-X/00009")


def test_observe_files_reports_size_and_sha256(tmp_path):
    store = DatasetStore(str(tmp_path / "store"))
    drop_dir = _files_drop(tmp_path, names=("a",))
    shard = register_drop(store, list_drops(str(drop_dir))[0], shard_size=1)[0]
    (observed,) = observe_files(shard)
    raw = (drop_dir / "a.warc.gz").read_bytes()
    import hashlib

    assert observed["size"] == len(raw)
    assert observed["sha256"] == hashlib.sha256(raw).hexdigest()
    (drop_dir / "a.warc.gz").unlink()
    with pytest.raises(DropError, match=r"WARC file missing: .*a.warc.gz"):
        observe_files(shard)


def test_listing_of_the_sample_drop_is_gzip(drops_dir):
    lines = gzip.decompress((drops_dir / "CC-MAIN-SAMPLE" / "warc.paths.gz").read_bytes())
    assert lines.decode().count("\n") == 4
