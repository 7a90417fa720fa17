"""Hash-listed bytes are never stored: not by a fetch, not by a re-run that carries them over."""

import hashlib

import pyarrow.parquet as pq
import pytest

from laion_assets.pipeline.core.files import LocalFolder
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.download.stage import RESULTS_FILE, Previous, download_shard
from laion_assets.pipeline.download.withhold import HASH_LISTED, listed_bytes
from laion_assets.pipeline.formats.webdataset import iter_tar_images, url_key
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets_tests import http_server
from laion_assets_tests.pipeline.download.test_download import CONFIG, _jpeg

loopback_server = http_server.loopback_server
LIST = "safety/hash_lists/md5/abuse.txt"


@pytest.fixture
def store(tmp_path) -> DatasetStore:
    return DatasetStore(str(tmp_path / "store"))


def _list_md5(store: DatasetStore, *images: bytes) -> None:
    with store.open(LIST, "wb") as handle:
        handle.write(b"".join(hashlib.md5(i).hexdigest().encode() + b"\n" for i in images))


def _stored(folder: LocalFolder) -> tuple[dict[str, dict], dict[str, bytes]]:
    table = pq.read_table(folder.path / RESULTS_FILE, use_threads=False, pre_buffer=False)
    rows = {r["url"]: r for r in table.to_pylist()}
    images = {k: v for tar in {r["tar"] for r in rows.values() if r["tar"]}
              for k, v, _ in iter_tar_images(open(folder.path / tar, "rb"))}
    return rows, images


def _tar_bytes(folder: LocalFolder) -> bytes:
    return b"".join(p.read_bytes() for p in folder.path.glob("*.tar"))


def test_a_listed_image_keeps_its_result_and_hashes_but_not_its_bytes(tmp_path, store,
                                                                      loopback_server):
    listed, clean = _jpeg(7), _jpeg(8)
    urls = [loopback_server.respond("/listed.jpg", listed, content_type="image/jpeg"),
            loopback_server.respond("/clean.jpg", clean, content_type="image/jpeg")]
    _list_md5(store, listed)
    folder = LocalFolder(tmp_path / "a")
    result = download_shard(urls, folder, config=CONFIG, log=lambda _: None,
                            withhold=listed_bytes(load_lists(store)))
    rows, images = _stored(folder)
    row = rows[urls[0]]
    assert (row["status"], row["reason"], row["transient"], row["tar"]) == (
        "failed", HASH_LISTED, False, None)
    assert row["detail"] == f"md5 in {LIST}: bytes not stored"
    assert row["md5"] == hashlib.md5(listed).hexdigest()  # the safety stage matches on it
    assert set(images) == {url_key(urls[1])}
    assert result.failures == {HASH_LISTED: 1} and result.counts["ok"] == 1
    assert listed not in _tar_bytes(folder)


def test_an_image_listed_after_it_was_stored_leaves_with_the_next_attempt(tmp_path, store,
                                                                         loopback_server):
    first_image, second_image = _jpeg(9), _jpeg(10)
    urls = [loopback_server.respond("/a.jpg", first_image, content_type="image/jpeg"),
            loopback_server.respond("/b.jpg", second_image, content_type="image/jpeg")]
    first = LocalFolder(tmp_path / "first")
    download_shard(urls, first, config=CONFIG, log=lambda _: None,
                   withhold=listed_bytes(load_lists(store)))
    assert set(_stored(first)[1]) == {url_key(u) for u in urls}
    resized = _stored(first)[1][url_key(urls[0])]
    _list_md5(store, first_image)
    previous = Previous(pq.read_table(first.path / RESULTS_FILE),
                        lambda name: open(first.path / name, "rb"))
    second = LocalFolder(tmp_path / "second")
    result = download_shard(urls, second, config=CONFIG, previous=previous, log=lambda _: None,
                            withhold=listed_bytes(load_lists(store)))
    rows, images = _stored(second)
    assert set(images) == {url_key(urls[1])} and resized not in _tar_bytes(second)
    assert rows[urls[0]]["reason"] == HASH_LISTED and result.kept == 2
    assert len(loopback_server.hits("/a.jpg")) == 1  # carried over and re-checked, not fetched


def test_without_lists_everything_is_stored(tmp_path, store, loopback_server):
    url = loopback_server.respond("/c.jpg", _jpeg(11), content_type="image/jpeg")
    folder = LocalFolder(tmp_path / "c")
    download_shard([url], folder, config=CONFIG, log=lambda _: None,
                   withhold=listed_bytes(load_lists(store)))
    assert set(_stored(folder)[1]) == {url_key(url)}


@pytest.mark.parametrize("still_listed", [True, False])
def test_withheld_pairs_are_excluded_by_the_hash_list_rule(still_listed):
    """Not as `not_fetched`; and still under `hash_list` once the entry left the list."""
    from laion_assets_tests.pipeline.safety.test_rules import MD5_LIST, _evaluate, _hits, _lists
    from laion_assets_tests.pipeline.safety.test_rules import _row as candidate

    detail = f"md5 in {MD5_LIST}: bytes not stored"
    rows = [candidate(0), candidate(1, fetch_status="failed", fetch_reason=HASH_LISTED,
                                     fetch_detail=detail, similarity=float("nan"))]
    md5 = rows[1]["md5"]
    decisions = _evaluate(rows, lists=_lists(md5=[md5] if still_listed else []))
    assert decisions.passed.tolist() == [True, False]
    expected = f"md5 in {MD5_LIST}" if still_listed else detail
    assert _hits(decisions) == {1: {"hash_list": [(expected, md5)]}}
