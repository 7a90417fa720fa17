"""Content codings: round trips, warcio's leniencies, and decompression bombs under a cap."""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import sys
import zlib
from collections import Counter

import brotli
import pytest
import zstandard

from laion_assets.pipeline.formats.codecs import CodingError, codings_of, decode_content

PAGE = b"<html><body>" + b"<p>A page about cats and their sofas.</p>" * 400 + b"</body></html>"
CAP = 8 << 20
BOMB_BYTES = 256 << 20  # what the brotli bomb inflates to


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """Bodies of a few hundred bytes that inflate to 256 MiB (br) or 64 MiB of zeros."""
    zeros = b"\0" * (1 << 20)
    packer = brotli.Compressor(quality=5, lgwin=24)
    parts = [packer.process(zeros) for _ in range(BOMB_BYTES // len(zeros))]
    br_bomb = b"".join([*parts, packer.finish()])
    zeros *= 64
    return {"br": br_bomb, "gzip": gzip.compress(zeros, compresslevel=6, mtime=0),
            "deflate": zlib.compress(zeros, 6), "br, gzip": gzip.compress(br_bomb, mtime=0),
            "zstd": zstandard.ZstdCompressor().compress(zeros)}


@pytest.mark.parametrize(
    ("header", "encode"),
    [
        ("gzip", lambda b: gzip.compress(b, mtime=0)),
        ("x-gzip", lambda b: gzip.compress(b, mtime=0)),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        ("br", brotli.compress),
        ("br, gzip", lambda b: gzip.compress(brotli.compress(b), mtime=0)),
        ("gzip,deflate", lambda b: zlib.compress(gzip.compress(b, mtime=0))),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("zstd, gzip", lambda b: gzip.compress(zstandard.ZstdCompressor().compress(b), mtime=0)),
        ("identity", lambda b: b),
        ("Identity, GZIP", lambda b: gzip.compress(b, mtime=0)),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "br", "br-then-gzip",
         "gzip-then-deflate", "zstd", "zstd-then-gzip", "identity", "identity-and-gzip"],
)
def test_codings_round_trip(header, encode):
    notes = Counter()
    assert decode_content(encode(PAGE), header, CAP, notes) == PAGE
    assert notes == {}


def test_codings_are_listed_in_the_order_applied():
    assert codings_of(" gzip , identity, BR ") == ["gzip", "br"]


def test_gzip_members_in_a_row_are_one_body():
    body = gzip.compress(PAGE[:100], mtime=0) + gzip.compress(PAGE[100:], mtime=0)
    assert decode_content(body, "gzip", CAP) == PAGE


@pytest.mark.parametrize("header", ["gzip", "deflate", "br", "zstd"])
def test_a_body_stored_decoded_is_used_as_stored(header):
    notes = Counter()
    assert decode_content(PAGE, header, CAP, notes) == PAGE
    assert notes == {"content_encoding_not_applied": 1}


def test_a_coding_that_breaks_part_way_keeps_what_decoded():
    body = bytearray(gzip.compress(bytes(range(256)) * 2000, compresslevel=1, mtime=0))
    body[len(body) // 2 : len(body) // 2 + 64] = b"\xff" * 64
    notes = Counter()
    decoded = decode_content(bytes(body), "gzip", CAP, notes)
    assert 0 < len(decoded) < 256 * 2000
    assert decoded[:100_000] == (bytes(range(256)) * 2000)[:100_000]  # before the damage
    assert notes == {"content_encoding_cut": 1}


@pytest.mark.parametrize(("header", "encode"), [
    ("gzip", lambda b: gzip.compress(b, compresslevel=0, mtime=0)),
    ("zstd", lambda b: zstandard.ZstdCompressor(level=1).compress(  # not all one block
        random.Random(7).randbytes(200_000) + b)),
])
def test_a_cut_stream_keeps_what_it_gave(header, encode):
    body = encode(PAGE)
    whole = decode_content(body, header, CAP)
    decoded = decode_content(body[: len(body) // 2], header, CAP)
    assert len(decoded) > 1000 and whole.startswith(decoded) and len(decoded) < len(whole)


@pytest.mark.parametrize("header", ["compress", "br, snappy"])
def test_unsupported_codings_are_named(header):
    with pytest.raises(CodingError) as caught:
        decode_content(PAGE, header, CAP)
    assert caught.value.reason == "unsupported_content_encoding"
    assert caught.value.detail == header.split(",")[-1].strip()


def test_output_over_the_cap_is_page_too_large():
    with pytest.raises(CodingError) as caught:
        decode_content(gzip.compress(PAGE, mtime=0), "gzip", len(PAGE) - 1)
    assert caught.value.reason == "page_too_large"
    assert caught.value.detail == f"over {len(PAGE) - 1} bytes after gzip decoding (stopped there)"


@pytest.mark.parametrize("header", ["br", "gzip", "deflate", "br, gzip", "zstd"])
def test_bombs_stop_at_the_cap(bombs, header):
    assert len(bombs[header]) < 100_000
    with pytest.raises(CodingError) as caught:
        decode_content(bombs[header], header, CAP)
    assert caught.value.reason == "page_too_large"


MEASURE = """
import json, resource, sys
from laion_assets.pipeline.formats.codecs import CodingError, decode_content
body = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode_content(body, sys.argv[2], 8 << 20)
    reason = None
except CodingError as exc:
    reason = exc.reason
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"reason": reason, "grew_kib": after - before}))
"""


@pytest.mark.parametrize("header", ["br", "br, gzip"])
def test_a_bomb_never_takes_more_memory_than_the_cap(bombs, header, tmp_path):
    """Measured in a fresh process: peak RSS grows by the cap and a chunk, not by 256 MiB."""
    path = tmp_path / "bomb"
    path.write_bytes(bombs[header])
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path), header],
                          capture_output=True, text=True, check=True, timeout=120)
    measured = json.loads(done.stdout)
    assert measured["reason"] == "page_too_large"
    assert measured["grew_kib"] < 32 << 10  # 32 MiB: the 8 MiB cap, its join, a chunk


def test_a_bomb_page_is_a_named_skip_in_extraction(bombs):
    """The decode site of extraction: the page is skipped as too large, the next one read."""
    from laion_assets.pipeline.extract.stage import extract_shard
    from laion_assets_tests.pipeline.formats.test_warc import gz, http_block, warc_record

    good = http_block('<html><body><img src="/a.jpg" alt="A lighthouse at dawn"></body></html>')
    bomb = http_block(bombs["br"], headers=(("Content-Encoding", "br"),))
    parts = gz(warc_record(bomb, uri="http://example.com/bomb"),
               warc_record(good, uri="http://example.com/good"))
    result = extract_shard(["x"], io.BytesIO(), open_file=lambda _: io.BytesIO(b"".join(parts)),
                           crawl="t", shard="t/00000")
    assert result.rows == 1
    assert [(s["offset"], s["reason"]) for s in result.skips] == [(0, "page_too_large")]
