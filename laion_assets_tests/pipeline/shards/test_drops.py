import gzip
import os
import shutil

import pytest

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.shards.drops import (
    MAX_LISTING_BYTES,
    CrawlDrop,
    DropError,
    drop_fingerprint,
    list_drops,
    list_warc_files,
    load_shard,
    observe_files,
    open_uri,
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


def _listing_drop(tmp_path, *entries: str):
    drop = tmp_path / "CRAWL-L"
    (drop / "rel").mkdir(parents=True, exist_ok=True)
    (drop / "warc.paths").write_text("# comment\n" + "\n".join(entries) + "\n\n")
    return CrawlDrop(str(drop), "CRAWL-L")


def test_uris_under_the_base_are_kept(tmp_path):
    drop = _listing_drop(tmp_path, f"file://{tmp_path}/CRAWL-L/rel/x.warc.gz", "rel/y.warc.gz")
    assert list_warc_files(drop) == [f"{drop.uri}/rel/x.warc.gz", f"{drop.uri}/rel/y.warc.gz"]
    common = _listing_drop(tmp_path / "cc", "s3://commoncrawl/crawl-data/a.warc.gz",
                           "crawl-data/b.warc.gz")
    assert list_warc_files(common, listing_base="s3://commoncrawl/") == [
        "s3://commoncrawl/crawl-data/a.warc.gz", "s3://commoncrawl/crawl-data/b.warc.gz"]


@pytest.mark.parametrize(
    ("entry", "base", "reason"),
    [
        ("../CRAWL-OTHER/x.warc.gz", None, "parent_reference"),
        ("rel/../../x.warc.gz", None, "parent_reference"),
        ("crawl-data/../../x.warc.gz", "s3://commoncrawl/", "parent_reference"),
        ("/etc/passwd", None, "absolute_path"),
        ("/crawl-data/x.warc.gz", "s3://commoncrawl/", "absolute_path"),
        ("file:///etc/passwd", None, "outside_base"),
        ("file:///etc/passwd", "s3://commoncrawl/", "other_protocol"),
        ("http://127.0.0.1/latest/meta-data/x.warc.gz", None, "other_protocol"),
        ("https://example.com/x.warc.gz", "s3://commoncrawl/", "other_protocol"),
        ("memory://x.warc.gz", None, "other_protocol"),
        ("s3://bucket/x.warc.gz", None, "other_protocol"),
        ("simplecache::s3://commoncrawl/x.warc.gz", "s3://commoncrawl/", "other_protocol"),
        ("s3://other-bucket/x.warc.gz", "s3://commoncrawl/", "outside_base"),
        ("s3://commoncrawl/../other/x.warc.gz", "s3://commoncrawl/", "outside_base"),
        ("file:///tmp/elsewhere/x.warc.gz", None, "outside_base"),
    ],
)
def test_listing_entries_leaving_the_drop_are_refused(tmp_path, entry, base, reason):
    drop = _listing_drop(tmp_path, "rel/ok.warc.gz", entry)
    with pytest.raises(DropError) as caught:
        list_warc_files(drop, listing_base=base)
    assert str(caught.value).startswith(f"{drop.uri}/warc.paths: entry {entry!r}: {reason} (")


def _refusal(drop: CrawlDrop, entry: str) -> str:
    with pytest.raises(DropError) as caught:
        list_warc_files(drop)
    prefix = f"{drop.uri}/warc.paths: entry {entry!r}: "
    assert str(caught.value).startswith(prefix)
    return str(caught.value)[len(prefix):]


def test_symlinks_that_leave_the_drop_are_refused(tmp_path):
    secret = tmp_path / "secret.warc.gz"
    secret.write_bytes(b"not yours")
    drop = _listing_drop(tmp_path, "rel/link.warc.gz")
    (tmp_path / "CRAWL-L" / "rel" / "link.warc.gz").symlink_to(secret)
    assert _refusal(drop, "rel/link.warc.gz") == (
        f"symlink_leaves_drop (it resolves to {secret})")
    (tmp_path / "CRAWL-L" / "rel" / "zero.warc.gz").symlink_to("/dev/zero")
    drop = _listing_drop(tmp_path, "rel/zero.warc.gz")
    assert _refusal(drop, "rel/zero.warc.gz") == "symlink_leaves_drop (it resolves to /dev/zero)"


def test_a_symlink_inside_the_drop_is_kept(tmp_path):
    drop = _listing_drop(tmp_path, "rel/alias.warc.gz")
    shutil.copy(SHARED_WARCS / "wget-2024-sample.warc.gz", tmp_path / "CRAWL-L" / "real.warc.gz")
    (tmp_path / "CRAWL-L" / "rel" / "alias.warc.gz").symlink_to(tmp_path / "CRAWL-L" /
                                                                "real.warc.gz")
    assert list_warc_files(drop) == [f"{drop.uri}/rel/alias.warc.gz"]


@pytest.mark.parametrize("kind", ["FIFO", "folder"])
def test_non_regular_files_are_refused(tmp_path, kind):
    drop = _listing_drop(tmp_path, "rel/odd.warc.gz")
    odd = tmp_path / "CRAWL-L" / "rel" / "odd.warc.gz"
    os.mkfifo(odd) if kind == "FIFO" else odd.mkdir()
    assert _refusal(drop, "rel/odd.warc.gz") == f"not_a_regular_file ({odd} is a {kind})"


def test_a_file_drop_with_a_device_link_is_refused(tmp_path):
    drop_dir = _files_drop(tmp_path, names=("a",))
    (drop_dir / "b.warc.gz").symlink_to("/dev/zero")
    with pytest.raises(DropError, match=r"CRAWL-X: entry 'b.warc.gz': symlink_leaves_drop"):
        list_warc_files(list_drops(str(drop_dir))[0])


def test_a_listing_that_inflates_past_its_bound_is_refused(tmp_path):
    drop = tmp_path / "CRAWL-Z"
    drop.mkdir()
    bomb = gzip.compress(b"a.warc.gz\n" * ((MAX_LISTING_BYTES // 10) + 1), mtime=0)
    (drop / "warc.paths.gz").write_bytes(bomb)
    with pytest.raises(DropError, match=r"CRAWL-Z/warc.paths.gz: listing over \d+ bytes"):
        list_warc_files(CrawlDrop(str(drop), "CRAWL-Z"))


def test_open_uri_refuses_devices_and_oversized_files(tmp_path):
    with pytest.raises(DropError, match=r"^/dev/zero: not_a_regular_file \(character device\)"):
        open_uri("/dev/zero")
    warc = tmp_path / "x.warc.gz"
    warc.write_bytes(b"x" * 1000)
    with pytest.raises(DropError, match=rf"^{warc}: file_too_large \(1000 bytes > 999\)"):
        open_uri(str(warc), max_bytes=999)


def test_open_uri_reads_stop_at_the_size_at_open(tmp_path):
    warc = tmp_path / "x.warc.gz"
    warc.write_bytes(b"a" * 1000)
    with open_uri(str(warc)) as handle:
        with warc.open("ab") as grow:
            grow.write(b"b" * 5000)
        assert handle.read() == b"a" * 1000
        handle.seek(990)
        assert handle.read(100) == b"a" * 10
        assert handle.read(100) == b""


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
