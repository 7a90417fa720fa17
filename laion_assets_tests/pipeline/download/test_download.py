"""The download stage: sources in order, one result per URL, incremental re-runs."""

import io

import pyarrow.parquet as pq
import pytest
from PIL import Image

from laion_assets.pipeline.core.files import LocalFolder
from laion_assets.pipeline.download.images import ImagePolicy
from laion_assets.pipeline.download.live import LiveFetchConfig
from laion_assets.pipeline.download.stage import (
    RESULTS_FILE,
    DownloadConfig,
    Previous,
    download_shard,
)
from laion_assets.pipeline.formats.webdataset import iter_tar_images, url_key
from laion_assets_tests import http_server

loopback_server = http_server.loopback_server

LIVE = LiveFetchConfig(allowed_networks=("127.0.0.0/8",), retries=0, total_timeout=5,
                       backoff_seconds=0.05)
CONFIG = DownloadConfig(sources=("live",), live=LIVE, policy=ImagePolicy(min_bytes=100),
                        images_per_tar=2)


def _jpeg(seed: int) -> bytes:
    image = Image.effect_noise((64, 48), 40 + seed).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _results(folder: LocalFolder) -> dict[str, dict]:
    table = pq.read_table(folder.path / RESULTS_FILE, use_threads=False, pre_buffer=False)
    return {r["url"]: r for r in table.to_pylist()}


def test_one_result_per_unique_url_with_hashes_and_tars(tmp_path, loopback_server):
    urls = [loopback_server.respond(f"/{i}.jpg", _jpeg(i), content_type="image/jpeg")
            for i in range(3)]
    html = loopback_server.respond("/fake.jpg", b"<html>not an image</html>" * 20,
                                   content_type="image/jpeg")
    missing = loopback_server.respond("/missing.jpg", b"", status=404)
    folder = LocalFolder(tmp_path / "a")
    result = download_shard(urls + urls[:1] + [html, missing], folder, config=CONFIG,
                            log=lambda _: None)
    rows = _results(folder)
    assert result.rows == len(rows) == 5
    assert [rows[u]["status"] for u in urls] == ["ok"] * 3
    assert rows[html]["reason"] == "not_an_image" and rows[missing]["reason"] == "http_404"
    assert rows[urls[0]]["source"] == "live" and len(rows[urls[0]]["md5"]) == 32
    assert result.tars == ["images-00000.tar", "images-00001.tar"]  # 2 images per tar
    keys = [k for tar in result.tars
            for k, _, _ in iter_tar_images(open(folder.path / tar, "rb"))]
    assert sorted(keys) == sorted(url_key(u) for u in urls)


def test_rerun_keeps_successes_and_retries_only_transient_failures(tmp_path, loopback_server):
    good = loopback_server.respond("/good.jpg", _jpeg(1), content_type="image/jpeg")
    gone = loopback_server.respond("/gone.jpg", b"", status=404)
    flaky = loopback_server.sequence("/flaky.jpg", [
        http_server.static(b"", status=503),
        http_server.static(_jpeg(2), content_type="image/jpeg"),
    ])
    first = LocalFolder(tmp_path / "first")
    download_shard([good, gone, flaky], first, config=CONFIG, log=lambda _: None)
    rows = _results(first)
    assert rows[flaky]["status"] == "failed" and rows[flaky]["transient"]
    assert rows[gone]["transient"] is False
    previous = Previous(pq.read_table(first.path / RESULTS_FILE, use_threads=False,
                                      pre_buffer=False),
                        lambda name: open(first.path / name, "rb"))
    second = LocalFolder(tmp_path / "second")
    result = download_shard([good, gone, flaky], second, config=CONFIG, previous=previous,
                            log=lambda _: None)
    rows2 = _results(second)
    # counts describe every stored result; the retried one is reported apart
    assert (result.rows, result.counts["ok"], result.counts["failed"]) == (3, 2, 1)
    assert result.failures == {"http_404": 1} and result.by_source == {"live": 3}
    assert (result.kept, result.fetched_this_run, result.urls) == (2, 1, 3)
    assert [rows2[u]["status"] for u in (good, gone, flaky)] == ["ok", "failed", "ok"]
    assert len(loopback_server.hits("/good.jpg")) == 1  # kept, not fetched again
    assert len(loopback_server.hits("/gone.jpg")) == 1  # permanent failure kept
    assert len(loopback_server.hits("/flaky.jpg")) == 2  # transient failure retried
    assert rows2[good]["sha256"] == rows[good]["sha256"]
    images = {k: v for tar in {r["tar"] for r in rows2.values() if r["tar"]}
              for k, v, _ in iter_tar_images(open(second.path / tar, "rb"))}
    assert set(images) == {url_key(good), url_key(flaky)}


def test_replay_only_without_a_capture_is_not_captured(tmp_path):
    config = DownloadConfig(sources=("replay",))
    folder = LocalFolder(tmp_path)
    download_shard(["http://nowhere.example/a.jpg"], folder, config=config, log=lambda _: None)
    assert _results(folder)["http://nowhere.example/a.jpg"]["reason"] == "not_captured"


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="sources"):
        DownloadConfig(sources=("ftp",))
