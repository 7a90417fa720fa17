"""Replay from real WARC captures: the drop's image responses, one seek each."""

import io

import pytest

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.download.images import ImagePolicy, process_image
from laion_assets.pipeline.download.replay import (
    ReplayError,
    ReplayIndex,
    ReplaySource,
    index_from_tables,
)
from laion_assets.pipeline.extract.stage import extract_shard
from laion_assets_tests.conftest import SHARED_WARCS


def _index(tmp_path, name: str) -> tuple[ReplayIndex, list[str]]:
    """Extract a real WARC with its captures; return the index and the pair URLs."""
    store = DatasetStore(str(tmp_path))
    warc = str(SHARED_WARCS / name)
    with store.open("pairs.parquet", "wb") as pairs, store.open("captures.parquet", "wb") as caps:
        extract_shard([warc], pairs, open_file=lambda u: open(u, "rb"), crawl="t",
                      shard="t/00000", captures_sink=caps)
    urls = store.read_parquet("pairs.parquet").column("url").to_pylist()
    return index_from_tables([store.read_parquet("captures.parquet")]), urls


class CountingFile(io.FileIO):
    seeks = 0

    def seek(self, *args):
        CountingFile.seeks += 1
        return super().seek(*args)


def _warcio_image_responses(name: str) -> int:
    from warcio.archiveiterator import ArchiveIterator

    with open(SHARED_WARCS / name, "rb") as stream:
        return sum(1 for r in ArchiveIterator(stream) if r.rec_type == "response"
                   and r.http_headers is not None
                   and (r.http_headers.get_header("Content-Type") or "").startswith("image/"))


@pytest.mark.parametrize("name", ["wikipedia-2012-homepage.warc.gz",
                                  "heritrix-2013-magazine.warc.gz"])
def test_the_index_holds_every_image_response(tmp_path, name):
    index, _ = _index(tmp_path, name)
    # heritrix-2013-magazine holds no image responses at all (HTML, RSS, dns: records only)
    assert len(index) == _warcio_image_responses(name) == {"wikipedia": 58}.get(name[:9], 0)


def test_real_captures_replay_and_decode(tmp_path):
    name = "wikipedia-2012-homepage.warc.gz"
    index, urls = _index(tmp_path, name)
    captured = [u for u in dict.fromkeys(urls) if u in index]
    assert len(captured) == 17
    CountingFile.seeks = 0
    source = ReplaySource(index, lambda uri: CountingFile(uri, "rb"))
    decoded = 0
    assert source.fetch("http://bitchmagazine.org/not-captured.jpg") is None
    for url in captured:
        replayed = source.fetch(url)
        assert replayed is not None and replayed.capture.warc_file.endswith(name)
        if replayed.http_status == 200:
            image = process_image(replayed.body, ImagePolicy(min_bytes=0))
            assert image.width > 0 and len(image.sha256) == 64
            decoded += 1
    source.close()
    assert decoded > 0
    assert CountingFile.seeks == len(captured)  # one seek per image
    assert source.fetch("http://not.captured.example/x.jpg") is None


def test_wikipedia_capture_bytes_are_the_archived_ones(tmp_path):
    index, urls = _index(tmp_path, "wikipedia-2012-homepage.warc.gz")
    url = next(u for u in urls if u.endswith("100px-Nick_Drake_Grave.jpg"))
    replayed = ReplaySource(index, lambda uri: open(uri, "rb")).fetch(url)
    assert replayed.http_status == 200 and replayed.content_type == "image/jpeg"
    assert replayed.body[:3] == b"\xff\xd8\xff"


def test_a_capture_that_cannot_be_read_names_file_and_offset(tmp_path):
    index, urls = _index(tmp_path, "wikipedia-2012-homepage.warc.gz")
    url = next(u for u in urls if u in index)
    broken = tmp_path / "broken.warc.gz"
    broken.write_bytes(b"\x00" * 10)
    capture = index.get(url)
    source = ReplaySource(index, lambda uri: open(broken, "rb"))
    with pytest.raises(ReplayError, match=f"offset {capture.offset}"):
        source.fetch(url)


def test_a_brotli_bomb_capture_stops_at_the_cap(tmp_path):
    """An image capture whose `Content-Encoding: br` body inflates to 256 MiB: replay stops
    at the image cap with a named reason instead of inflating it all."""
    import brotli

    from laion_assets.pipeline.download.replay import MAX_IMAGE_RECORD_BYTES
    from laion_assets_tests.pipeline.formats.test_warc import gz, http_block, warc_record

    packer = brotli.Compressor(quality=5, lgwin=24)
    parts = [packer.process(b"\0" * (1 << 20)) for _ in range(256)]
    bomb = b"".join([*parts, packer.finish()])
    block = http_block(bomb, content_type="image/png", headers=(("Content-Encoding", "br"),))
    url = "http://example.com/bomb.png"
    warc = tmp_path / "bomb.warc.gz"
    warc.write_bytes(b"".join(gz(warc_record(block, uri=url))))
    store = DatasetStore(str(tmp_path / "store"))
    with store.open("p.parquet", "wb") as pairs, store.open("c.parquet", "wb") as caps:
        extract_shard([str(warc)], pairs, open_file=lambda u: open(u, "rb"), crawl="t",
                      shard="t/00000", captures_sink=caps)
    source = ReplaySource(index_from_tables([store.read_parquet("c.parquet")]),
                          lambda u: open(u, "rb"))
    with pytest.raises(ReplayError) as caught:
        source.fetch(url)
    source.close()
    assert str(caught.value) == (
        f"{warc} at offset 0: page_too_large: over {MAX_IMAGE_RECORD_BYTES} bytes after br "
        "decoding (stopped there)")
